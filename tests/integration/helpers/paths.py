"""Where the repository, the build and the tools are, and how DPDK gets memory."""
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[3]
TOOLS = pathlib.Path(__file__).resolve().parents[1] / "tools"
PYTHON = "/usr/bin/python3"  # Debian's: it has scapy; the pyenv one on PATH does not


def build_dir():
    return pathlib.Path(os.environ.get("TANDEM_BUILD_DIR", REPO / "build"))


def switch_binary():
    return build_dir() / "switch" / "tandem-switch"


def tables_binary():
    return build_dir() / "common" / "tables" / "tool" / "tandem-tables"


def hugepages_ok():
    """True when scripts/setup.sh found hugepages reserved and mounted.

    TANDEM_HUGEPAGES in the environment wins; else the verdict setup.sh wrote
    into the build directory; with neither, assume no hugepages (the safe
    --no-huge fallback always works)."""
    env = os.environ.get("TANDEM_HUGEPAGES")
    if env is not None:
        return env == "1"
    try:
        for line in (build_dir() / "tandem-setup.env").read_text().splitlines():
            if line.startswith("TANDEM_HUGEPAGES="):
                return line.split("=", 1)[1].strip() == "1"
    except OSError:
        pass
    return False


def eal_memory_args():
    return [] if hugepages_ok() else ["--no-huge", "-m", "512"]
