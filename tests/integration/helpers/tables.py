"""Runs tandem-tables, the writer tool over a node's session tables."""
import json
import subprocess

from . import paths

# The reasons a bad packet may be dropped for, as named by DropName().
BAD_INPUT_DROPS = ("malformed", "unsupported", "not_for_us", "unknown_leg")


class Tables:
    def __init__(self, shm_dir, node, legs=65536, meetings=16384):
        self.shm_dir = shm_dir
        self.node = node
        self.legs = legs
        self.meetings = meetings

    @classmethod
    def of(cls, switch):
        """The tables of a helpers.switch.Switch, with the same capacity."""
        return cls(switch.shm_dir, switch.node, switch.legs, switch.meetings)

    def run(self, *args, input=None, check=True):
        argv = [str(paths.tables_binary()), "--shm-dir", str(self.shm_dir), "--node", self.node,
                "--legs", str(self.legs), "--meetings", str(self.meetings), *map(str, args)]
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError(f"tandem-tables {' '.join(map(str, args))} exited "
                               f"{p.returncode}: {p.stderr.strip()}\ninput:\n{input or ''}")
        return p

    def apply(self, text):
        """Applies change lines (see tandem-tables --help)."""
        return self.run("apply", "-", input=text)

    def show(self):
        return json.loads(self.run("show", "--json").stdout)

    def usage(self):
        return json.loads(self.run("usage", "--json").stdout)

    def stats(self):
        return json.loads(self.run("stats", "--json").stdout)

    def drops(self):
        """Totals of drops by reason, from the switch's state region."""
        return dict(self.stats()["totals"]["drops"])
