"""scripts/lib/check_tools.sh: a missing program is named with its Debian
package, the table lists every program the Python code of the suite runs,
and setup.sh installs every package of the table.

  /usr/bin/python3 -m pytest -q scripts/lib/test_check_tools.py
"""
import ast
import os
import pathlib
import shutil
import subprocess

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHECK = HERE / "check_tools.sh"


def bash(script, **kw):
    return subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, **kw)


def table():
    """{name: (package, where)} from check_tools.sh."""
    out = bash(f'source "{CHECK}"; printf "%s\\n" "${{TANDEM_TOOLS[@]}}"').stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    return {r[0]: (r[1], r[2]) for r in rows}


def path_without(tmp_path, missing):
    """A PATH holding every command of the table but `missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in table():
        if name.startswith("py:") or name.startswith("/") or name == missing:
            continue
        real = shutil.which(name)
        assert real, f"{name} is not installed here: run scripts/setup.sh"
        os.symlink(real, bin_dir / name)
    return str(bin_dir)


def test_a_missing_command_is_named_with_its_package(tmp_path):
    r = subprocess.run(["/bin/bash", str(CHECK)], capture_output=True, text=True,
                       env={"PATH": path_without(tmp_path, "ping")})
    assert r.returncode == 1
    missing = [line for line in r.stderr.splitlines() if line.startswith("missing:")]
    assert missing == ["missing: ping (Debian package iputils-ping; called by "
                       "tests/integration/test_shared_nic.py, scripts/bench_shared_nic.sh)"]
    assert "apt-get install iputils-ping" in r.stderr


def test_every_missing_entry_is_named_at_once(tmp_path):
    r = subprocess.run(["/bin/bash", str(CHECK), "tandem-no-such-tool tandem-pkg-a here",
                        "py:tandem_no_such_module tandem-pkg-b there"],
                       capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 1
    assert "missing: tandem-no-such-tool (Debian package tandem-pkg-a; called by here)" in r.stderr
    assert ("missing: py:tandem_no_such_module (Debian package tandem-pkg-b; called by there)"
            in r.stderr)
    assert "apt-get install tandem-pkg-a tandem-pkg-b" in r.stderr


def test_nothing_missing_passes_silently():
    r = subprocess.run(["/bin/bash", str(CHECK)], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")


def test_setup_installs_every_package_of_the_table():
    setup = REPO / "scripts" / "setup.sh"
    out = bash(f'eval "$(sed -n "/^TANDEM_DEBIAN_PACKAGES=(/,/^)/p" "{setup}")"; '
               'printf "%s\\n" "${TANDEM_DEBIAN_PACKAGES[@]}"').stdout.split()
    assert "iputils-ping" in out
    missing = sorted({pkg for pkg, _ in table().values()} - set(out))
    assert not missing, f"in check_tools.sh's table but not in setup.sh: {missing}"


# Calls that run a program, and variables that hold a command line.
RUNNERS = {"run", "Popen", "popen", "run_in", "check_output", "check_call", "call"}
ARGV_NAMES = {"cmd", "argv", "command"}
WRAPPERS = {"stdbuf", "timeout", "setsid", "nice"}


def _leftmost_list(node):
    while isinstance(node, ast.BinOp):  # ["prog", ...] + more
        node = node.left
    return node if isinstance(node, (ast.List, ast.Tuple)) else None


def _programs(lst):
    words = [e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None
             for e in lst.elts]
    out = [words[0]] if words and words[0] else []
    if words[:3] == ["ip", "netns", "exec"] and len(words) > 4 and words[4]:
        out.append(words[4])  # ip netns exec NS PROGRAM
    if words and words[0] in WRAPPERS:
        out += [w for w in words[1:] if w and not w.startswith("-")][:1]
    return out


def programs_run(roots):
    """{program: [file:line]} for every command line literal in the Python code."""
    found = {}
    for root in roots:
        for path in sorted(pathlib.Path(root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                lists = []
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    if name in RUNNERS:
                        lists = [_leftmost_list(a) for a in node.args[:2]]
                elif isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id in ARGV_NAMES for t in node.targets):
                    lists = [_leftmost_list(node.value)]
                for lst in filter(None, lists):
                    for prog in _programs(lst):
                        where = f"{path.relative_to(REPO)}:{node.lineno}"
                        found.setdefault(prog, []).append(where)
    return found


def test_the_scan_finds_what_the_suite_runs():
    found = programs_run([REPO / "tests" / "integration", REPO / "scripts"])
    for prog in ("ip", "ping", "tcpdump", "ethtool", "ffmpeg", "dpdk-testpmd", "clang", "tc"):
        assert prog in found, prog


@pytest.mark.parametrize("root", ["tests/integration", "scripts"])
def test_every_program_the_python_code_runs_is_in_the_table(root):
    known = table()
    unlisted = {p: w for p, w in programs_run([REPO / root]).items()
                if p not in known and not p.startswith(str(REPO))}
    assert not unlisted, ("programs run but not in scripts/lib/check_tools.sh "
                          f"(add them with their Debian package): {unlisted}")
