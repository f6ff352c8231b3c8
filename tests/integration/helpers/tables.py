"""Runs tandem-tables, the writer tool over a node's session tables."""
import json
import mmap
import os
import struct
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


class RoleReader:
    """A node's role and epoch as its tables say them to the switch, read
    straight from the mapped region: a few microseconds, so a test can sample
    both nodes every few milliseconds (tandemctl takes tens). The offsets are
    TablesHeader's (common/tables/layout.h); the first read is checked
    against tandem-tables, so a layout change fails loudly, not silently."""

    ROLE_OFFSET, EPOCH_OFFSET = 148, 152
    ROLES = {0: "standby", 1: "active"}

    def __init__(self, tables):
        path = os.path.join(str(tables.shm_dir), f"tandem.{tables.node}.tables")
        with open(path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ)
        shown = tables.show()
        got = self.read()
        assert got == (shown["role"], int(shown["epoch"])), (
            f"RoleReader: offsets disagree with tandem-tables: {got} against "
            f"{shown['role']}, {shown['epoch']} (common/tables/layout.h changed?)")

    def read(self):
        role = struct.unpack_from("<I", self.map, self.ROLE_OFFSET)[0]
        epoch = struct.unpack_from("<Q", self.map, self.EPOCH_OFFSET)[0]
        return self.ROLES.get(role, f"role {role}"), epoch

    def role(self):
        return self.read()[0]

    def close(self):
        self.map.close()
