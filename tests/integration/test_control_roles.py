"""Who may make which call (issue 14, item 11): roles by caller identity,
through a real tandem-control.

On the Unix socket the daemon asks the kernel who connected (SO_PEERCRED and
SO_PEERGROUPS): other users are played by `setpriv` with chosen uids and gids.
On TCP the client certificate decides (mutual TLS): certificates with
different subjects and subject alternative names, made by the openssl CLI.
Each call of the API is made by each role; a call the role does not allow is
refused with PERMISSION_DENIED naming the caller and the role needed, and
changes nothing; an allowed call gets past the check (it may still fail for
its own reasons: an unknown id, no pair).
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import (ControlDaemon, control_binary, ctl_binary,  # noqa: E402
                                     free_port)
from control_helpers.pki import Pki  # noqa: E402

ROLES = ["none", "read_only", "operator", "admin"]
UIDS = {"none": 64001, "read_only": 64002, "operator": 64003, "admin": 64004}
GROUP_OPERATOR = 64100  # a supplementary group that makes its members operators

# Every call of the API as tandemctl makes it, with the role it needs. The
# ids name nothing (the calls that get past the check fail with NOT_FOUND).
CALLS = [
    ("GetStatus", "read_only", ["status"]),
    ("ListSites", "read_only", ["site", "list"]),
    ("GetSite", "read_only", ["site", "get", "999"]),
    ("ListMeetings", "read_only", ["meeting", "list"]),
    ("GetMeeting", "read_only", ["meeting", "get", "999"]),
    ("ListParticipants", "read_only", ["participant", "list", "--meeting", "999"]),
    ("ListLegs", "read_only", ["show", "legs"]),
    ("GetUsage", "read_only", ["show", "usage", "--meeting", "999"]),
    ("LostWrites", "read_only", ["pair", "lost"]),
    ("CreateSite", "operator", ["site", "create", "--name", "made-by-CALLER"]),
    ("UpdateSite", "operator", ["site", "update", "999", "--name", "x"]),
    ("ScheduleMeeting", "operator", ["meeting", "schedule", "--site", "999", "--title", "t"]),
    ("StartMeeting", "operator", ["meeting", "start", "999"]),
    ("EndMeeting", "operator", ["meeting", "end", "999"]),
    ("UpdateMeeting", "operator", ["meeting", "update", "999", "--title", "x"]),
    ("Join", "operator", ["participant", "join", "--meeting", "999", "--name", "a",
                          "--leg", "audio,198.18.0.10:5000"]),
    ("Leave", "operator", ["participant", "leave", "999"]),
    ("SetRole", "operator", ["participant", "role", "999", "host"]),
    ("SetMute", "operator", ["participant", "mute", "999"]),
    ("ComparePair", "operator", ["pair", "compare"]),
    ("Switchover", "operator", ["pair", "switchover"]),
    ("AcknowledgeLostWrites", "operator", ["pair", "lost", "--ack"]),
    ("Switchover", "admin", ["pair", "switchover", "--force"]),
    ("DeleteSite", "admin", ["site", "delete", "999"]),
]


def allowed(role, needs):
    return ROLES.index(role) >= ROLES.index(needs)


def check_call(run, role, method, needs, args, who):
    p = run([a.replace("CALLER", role) for a in args])
    line = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    if allowed(role, needs):
        assert "PERMISSION_DENIED" not in p.stderr, (role, method, p.stderr)
    else:
        assert p.returncode == 1, (role, method, p.returncode, p.stdout, p.stderr)
        assert line.startswith(f"tandemctl: PERMISSION_DENIED: {method}"), (role, method, line)
        assert f"needs the {needs} role" in line and who in line, (role, method, line)
        assert p.stdout == "", (role, method, p.stdout)


@pytest.fixture
def workdir():
    d = pathlib.Path(tempfile.mkdtemp(prefix="tandem-roles-", dir="/dev/shm"))
    d.chmod(0o755)  # other users reach the socket and our copy of tandemctl in it
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unix_runner(d, workdir, uid, gid, groups=()):
    ctl_copy = workdir / "tandemctl"
    if not ctl_copy.exists():
        shutil.copy(ctl_binary(), ctl_copy)
        ctl_copy.chmod(0o755)
    group_args = [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]

    def run(args):
        return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", *group_args,
                               str(ctl_copy), "--api", d.api, "--timeout", "5", *args],
                              capture_output=True, text=True, timeout=60)
    return run


def site_names(d):
    return sorted(s["name"] for s in d.ctl("site", "list").get("sites", []))


def test_each_role_each_call_on_the_unix_socket(workdir):
    roles = "\n".join(f'{r} = ["uid:{UIDS[r]}"]' for r in ("read_only", "operator", "admin"))
    d = ControlDaemon(workdir, api_toml=f'socket_mode = "0666"\n[api.roles]\n{roles}')
    try:
        d.start()
        for role in ROLES:
            run = unix_runner(d, workdir, UIDS[role], UIDS[role])
            for method, needs, args in CALLS:
                check_call(run, role, method, needs, args, f"uid {UIDS[role]}")
        # Only the operator and the admin made a site; nobody else changed anything.
        assert site_names(d) == ["made-by-admin", "made-by-operator"]
        metrics = d.metrics()
        assert 'tandem_api_calls_total{method="DeleteSite",code="PERMISSION_DENIED"} 3' in metrics
    finally:
        d.close()


def test_a_group_gives_its_members_a_role(workdir):
    d = ControlDaemon(workdir, api_toml=f'socket_mode = "0666"\n[api.roles]\n'
                                        f'operator = ["gid:{GROUP_OPERATOR}"]')
    try:
        d.start()
        member = unix_runner(d, workdir, 64010, 64010, groups=(5, GROUP_OPERATOR))
        p = member(["site", "create", "--name", "by-member"])
        assert p.returncode == 0, p.stderr
        check_call(member, "operator", "DeleteSite", "admin", ["site", "delete", "1"], "uid 64010")
        outsider = unix_runner(d, workdir, 64011, 64011, groups=(5,))
        check_call(outsider, "none", "GetStatus", "read_only", ["status"], "uid 64011")
        assert site_names(d) == ["by-member"]
    finally:
        d.close()


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="tandem-roles-pki-", dir="/dev/shm")
    try:
        p = Pki(d)
        p.ca("ca")
        p.leaf("server", "ca", "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
        client = "extendedKeyUsage = clientAuth\n"
        p.leaf("viewer", "ca", client)                       # read_only by its common name
        p.leaf("app", "ca", "subjectAltName = DNS:app.example.test\n" + client)  # operator by SAN
        p.leaf("admin-ops", "ca", client)                    # admin by its whole subject
        p.leaf("stranger", "ca", client)                     # issued by the CA, no role
        yield p
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_each_role_each_call_over_tls(workdir, pki):
    port = free_port()
    api = "\n".join([f'tcp = "127.0.0.1:{port}"', f'tls_cert = "{pki.server_crt}"',
                     f'tls_key = "{pki.server_key}"', f'tls_ca = "{pki.ca_crt}"',
                     "[api.roles]", 'read_only = ["cert:viewer"]',
                     'operator = ["cert:app.example.test"]', 'admin = ["subject:CN=admin-ops"]'])
    d = ControlDaemon(workdir, api_toml=api)
    certs = {"none": "stranger", "read_only": "viewer", "operator": "app", "admin": "admin-ops"}
    try:
        d.start()
        for role in ROLES:
            name = certs[role]

            def run(args, name=name):
                return subprocess.run(
                    [str(ctl_binary()), "--api", f"127.0.0.1:{port}", "--timeout", "5",
                     "--tls-cert", str(getattr(pki, f"{name}_crt")),
                     "--tls-key", str(getattr(pki, f"{name}_key")), "--tls-ca", str(pki.ca_crt),
                     *args], capture_output=True, text=True, timeout=60)
            for method, needs, args in CALLS:
                check_call(run, role, method, needs, args, f'certificate "CN={name}"')
        assert site_names(d) == ["made-by-admin", "made-by-operator"]
    finally:
        d.close()


def test_bad_role_entries_refuse_to_start(workdir):
    d = ControlDaemon(workdir, api_toml='[api.roles]\nadmin = ["user:tandem-no-such-user"]')
    p = subprocess.run([str(control_binary()), "--config", str(d.config)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert '[api.roles] admin: "user:tandem-no-such-user"' in p.stderr, p.stderr
    assert not d.socket.exists()
