#!/usr/bin/env python3
"""Files and functions over the project's size limits (issue 16: no file of
control/ or switch/ over about 800 lines, no function over about 80).

  scripts/lib/code_size.py [--files N] [--functions N] [DIR ...]

Prints one line per file or function over its limit and exits 1 if there is
any (0 otherwise). DIRs default to control and switch, searched for .cc and .h
files. A function is a brace-matched body that opens on a line with a
parameter list, outside any other function (lambdas count in the function
that holds them; class bodies and namespaces are looked into). The code is
clang-formatted, which is what makes this simple matching work.
"""
import argparse
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
CONTAINER = re.compile(r"^\s*(template\s*<.*>\s*)?(namespace|struct|class|union|enum|extern)\b")


def strip(line):
    """The line without comments, string and character literals."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return re.sub(r"//.*", "", line)


def signature_at(lines, i):
    """The first line of the declaration whose body opens on line i."""
    first = i
    while first > 0 and i - first < 6:
        before = strip(lines[first - 1]).strip()
        if not before or before.endswith((";", "{", "}", ":", "*/")) or before.startswith("#"):
            break
        first -= 1
    return lines[first].strip()


def functions(text):
    """(first line number, length in lines, signature line) of each function."""
    lines = text.split("\n")
    found = []
    depth = 0
    start = None  # (line index, depth at which the body opened, signature)
    in_comment = False
    for i, raw in enumerate(lines):
        line = strip(raw)
        if in_comment:
            if "*/" not in line:
                continue
            line = line.split("*/", 1)[1]
            in_comment = False
        line = re.sub(r"/\*.*?\*/", "", line)
        if "/*" in line:
            line, in_comment = line.split("/*", 1)[0], True
        for ch in line:
            if ch == "{":
                opens_body = (
                    start is None
                    and not CONTAINER.match(raw)
                    and not re.search(r"=\s*\{", line)
                    and (")" in line or line.strip() == "{" or re.search(r"\bconst\s*\{", line))
                )
                if opens_body:
                    start = (i, depth, signature_at(lines, i))
                depth += 1
            elif ch == "}":
                depth -= 1
                if start is not None and depth == start[1]:
                    found.append((start[0] + 1, i - start[0] + 1, start[2]))
                    start = None
    return found


def check(paths, max_file_lines, max_function_lines):
    """Lines naming each file and function over its limit."""
    over = []
    for path in paths:
        text = path.read_text(errors="replace")
        name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        n = text.count("\n")
        if n > max_file_lines:
            over.append(f"{name}: {n} lines (file limit {max_file_lines})")
        for line, length, signature in functions(text):
            if length > max_function_lines:
                over.append(f"{name}:{line}: function of {length} lines "
                            f"(limit {max_function_lines}): {signature[:70]}")
    return over


def sources(dirs):
    return sorted(p for d in dirs for p in pathlib.Path(d).rglob("*")
                  if p.suffix in (".cc", ".h") and p.is_file())


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=800, help="most lines of a file")
    ap.add_argument("--functions", type=int, default=80, help="most lines of a function")
    ap.add_argument("dirs", nargs="*", default=[str(REPO / "control"), str(REPO / "switch")])
    args = ap.parse_args(argv)
    over = check(sources(args.dirs), args.files, args.functions)
    for line in over:
        print(line)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
