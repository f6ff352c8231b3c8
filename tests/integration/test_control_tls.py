"""Who may change what (issue 7): the control API of a real tandem-control.

The Unix socket is plain: its file mode and group (from the configuration)
decide who may connect. A TCP listener is mutual TLS only: a client whose
certificate the configured CA did not issue, or that has none, gets nothing,
and the daemon refuses to start a TCP listener without its TLS keys.

The certificates come from the openssl CLI in a temp dir: a CA with a server
certificate (for 127.0.0.1 and the name tandem-control.test) and a client
certificate, and an unrelated CA with a client certificate of its own. Other
users are played by `setpriv` with uid 65534 (nobody) and chosen gids: no
account is created.
"""
import json
import os
import pathlib
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from control_helpers.control import (ControlDaemon, control_binary, ctl_binary,  # noqa: E402
                                     free_port)
from control_helpers.pki import Pki  # noqa: E402

NOBODY = 65534
SERVER_NAME = "tandem-control.test"


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="tandem-pki-", dir="/dev/shm")
    try:
        p = Pki(d)
        p.ca("ca")
        p.leaf("server", "ca", f"subjectAltName = IP:127.0.0.1, DNS:{SERVER_NAME}\n"
                               "extendedKeyUsage = serverAuth\n")
        p.leaf("client", "ca", "extendedKeyUsage = clientAuth\n")
        p.ca("otherca")
        p.leaf("rogue", "otherca", "extendedKeyUsage = clientAuth\n")
        yield p
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workdir():
    d = pathlib.Path(tempfile.mkdtemp(prefix="tandem-tls-", dir="/dev/shm"))
    # Other users must reach the socket (and our copy of tandemctl) in it.
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tls_toml(pki, port, cert=True, key=True, ca=True):
    lines = [f'tcp = "127.0.0.1:{port}"']
    if cert:
        lines.append(f'tls_cert = "{pki.server_crt}"')
    if key:
        lines.append(f'tls_key = "{pki.server_key}"')
    if ca:
        lines.append(f'tls_ca = "{pki.ca_crt}"')
    return "\n".join(lines)


@pytest.fixture
def tls_daemon(workdir, pki):
    port = free_port()
    # The client certificate may change sites (operator, control/api_roles.h).
    d = ControlDaemon(workdir, api_toml=tls_toml(pki, port) + '\n[api.roles]\noperator = ["cert:client"]')
    d.tcp = f"127.0.0.1:{port}"
    try:
        d.start()
        yield d
    finally:
        d.close()


def ctl(api, *args, cert=None, key=None, ca=None, server_name=None, env=None, timeout_s=5):
    argv = [str(ctl_binary()), "--api", api, "--json", "--timeout", str(timeout_s)]
    for flag, v in (("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca),
                    ("--tls-server-name", server_name)):
        if v is not None:
            argv += [flag, str(v)]
    e = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_TLS_")}
    e.update(env or {})
    return subprocess.run(argv + [str(a) for a in args], capture_output=True, text=True,
                          timeout=60, env=e)


def sites(d):
    """The site names, read through the Unix socket."""
    return sorted(s["name"] for s in d.ctl("site", "list").get("sites", []))


def one_line(p):
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


# ---------------------------------------------------------------- TCP: mutual TLS

def test_tcp_with_a_client_certificate_of_the_ca_works(tls_daemon, pki):
    d = tls_daemon
    good = dict(cert=pki.client_crt, key=pki.client_key, ca=pki.ca_crt)
    p = ctl(d.tcp, "status", **good)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["node"] == "ct"
    p = ctl(d.tcp, "site", "create", "--name", "over-tls", **good)
    assert p.returncode == 0, p.stderr
    site = json.loads(p.stdout)
    assert sites(d) == ["over-tls"]
    assert d.ctl("site", "get", site["site_id"])["name"] == "over-tls"
    # The same from the environment.
    p = ctl(d.tcp, "site", "list", env={"TANDEM_TLS_CERT": str(pki.client_crt),
                                        "TANDEM_TLS_KEY": str(pki.client_key),
                                        "TANDEM_TLS_CA": str(pki.ca_crt)})
    assert p.returncode == 0, p.stderr
    assert [s["name"] for s in json.loads(p.stdout)["sites"]] == ["over-tls"]
    # A certificate issued to a name: the name is checked, and can be given.
    port = d.tcp.rsplit(":", 1)[1]
    p = ctl(f"localhost:{port}", "status", **good)
    assert p.returncode == 3, p.stderr
    assert "--tls-server-name" in one_line(p)
    p = ctl(f"localhost:{port}", "status", server_name=SERVER_NAME, **good)
    assert p.returncode == 0, p.stderr
    # --pair A,B with TCP addresses uses the same certificates.
    p = subprocess.run([str(ctl_binary()), "--pair", f"{d.tcp},{d.api}", "--json", "--timeout",
                        "5", "--tls-cert", str(pki.client_crt), "--tls-key", str(pki.client_key),
                        "--tls-ca", str(pki.ca_crt), "status"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["role"] == "active"


def test_tcp_refuses_clients_without_a_valid_certificate(tls_daemon, pki):
    d = tls_daemon
    d.ctl("site", "create", "--name", "before")
    refused = {
        "no client certificate": dict(ca=pki.ca_crt),
        "certificate of another CA": dict(cert=pki.rogue_crt, key=pki.rogue_key, ca=pki.ca_crt),
    }
    for what, creds in refused.items():
        for args in (("site", "create", "--name", "intruder"), ("site", "delete", "1"),
                     ("status",)):
            p = ctl(d.tcp, *args, **creds)
            assert p.returncode == 3, (what, args, p.stdout, p.stderr)
            line = one_line(p)
            assert line.startswith("tandemctl: UNAVAILABLE: TLS handshake with tandem-control"), \
                (what, line)
            assert p.stdout == "", (what, p.stdout)
    line = one_line(ctl(d.tcp, "status", ca=pki.ca_crt))
    assert "none was given" in line and "--tls-cert" in line, line
    line = one_line(ctl(d.tcp, "status", cert=pki.rogue_crt, key=pki.rogue_key, ca=pki.ca_crt))
    assert "tls_ca" in line, line
    # A certificate with another's key is not sent at all.
    p = ctl(d.tcp, "site", "create", "--name", "intruder", cert=pki.client_crt,
            key=pki.rogue_key, ca=pki.ca_crt)
    assert p.returncode == 2, p.stderr
    assert f"--tls-key {pki.rogue_key} is not the key of the certificate in" in one_line(p)
    # Nothing changed, as seen through the Unix socket.
    assert sites(d) == ["before"]
    metrics = d.metrics()
    assert 'method="CreateSite",code="OK"} 1\n' in metrics, metrics
    assert 'method="DeleteSite"' not in metrics and 'method="GetStatus"' not in metrics, metrics

    # A client that does not trust the server's CA does not talk to it either.
    p = ctl(d.tcp, "status", cert=pki.client_crt, key=pki.client_key, ca=pki.otherca_crt)
    assert p.returncode == 3 and "not issued by the CA of --tls-ca" in one_line(p), p.stderr


def test_plaintext_on_the_tcp_port_gets_nothing(tls_daemon):
    host, port = tls_daemon.tcp.rsplit(":", 1)
    # An HTTP/2 (plaintext gRPC) client's opening: the preface and a SETTINGS frame.
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        got = b""
        try:
            while len(got) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    # At most a TLS alert record (content type 21), never an HTTP/2 frame.
    assert got == b"" or got[0] == 0x15, got[:64]


# ---------------------------------------------------------------- refusals to start

def start_refused(workdir, api_toml, *flags):
    """Starts tandem-control, which must refuse: its exit code and output."""
    d = ControlDaemon(workdir, api_toml=api_toml)
    p = subprocess.run([str(control_binary()), "--config", str(d.config), *flags],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stderr
    assert "serving" not in p.stderr, p.stderr
    assert not d.socket.exists(), "refused, yet its socket exists"
    return p.returncode, p.stderr.strip()


def test_daemon_refuses_tcp_without_tls(workdir, pki):
    port = free_port()
    rc, err = start_refused(workdir, f'tcp = "127.0.0.1:{port}"')
    assert rc == 2, err
    assert f"127.0.0.1:{port}" in err and "tls_cert, tls_key, tls_ca" in err, err
    rc, err = start_refused(workdir, tls_toml(pki, port, ca=False))
    assert rc == 2 and "needs tls_ca " in err, err
    rc, err = start_refused(workdir, tls_toml(pki, port, cert=False, key=False))
    assert rc == 2 and "needs tls_cert, tls_key " in err, err
    # The flags too: --api_tcp, or --api on TCP instead of the Unix socket.
    rc, err = start_refused(workdir, "", "--api_tcp", f"127.0.0.1:{port}")
    assert rc == 2 and "tls_cert" in err, err
    rc, err = start_refused(workdir, "", "--api", f"127.0.0.1:{port}")
    assert rc == 2 and "tls_cert" in err, err
    # Nothing listens there.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_daemon_refuses_unusable_certificate_files(workdir, pki):
    port = free_port()
    missing = workdir / "missing.crt"
    rc, err = start_refused(workdir, tls_toml(pki, port), "--api_tls_cert", str(missing))
    assert rc == 2 and f"[api] tls_cert: cannot read {missing}" in err, err
    rc, err = start_refused(workdir, tls_toml(pki, port), "--api_tls_ca", str(missing))
    assert rc == 2 and f"[api] tls_ca: cannot read {missing}" in err, err
    rc, err = start_refused(workdir, tls_toml(pki, port), "--api_tls_key", str(pki.client_key))
    assert rc == 2 and "[api] tls_key" in err and "is not the key of the certificate" in err, err
    rc, err = start_refused(workdir, tls_toml(pki, port), "--api_tls_cert", str(pki.server_key))
    assert rc == 2 and "[api] tls_cert" in err and "no PEM certificate" in err, err
    # Unreadable for the daemon's user (root reads any file): a directory.
    rc, err = start_refused(workdir, tls_toml(pki, port), "--api_tls_key", str(workdir))
    assert rc == 2 and f"[api] tls_key: cannot read {workdir}" in err, err


def test_daemon_refuses_a_bad_socket_mode_or_group(workdir):
    for mode in ("0999", "rw-rw----", "01777", "66"):
        rc, err = start_refused(workdir, f'socket_mode = "{mode}"')
        assert rc == 2 and "[api]: socket_mode" in err and f"\"{mode}\" is not a mode" in err, err
    rc, err = start_refused(workdir, "socket_mode = 0o660")
    assert rc == 2 and "socket_mode" in err, err
    rc, err = start_refused(workdir, 'socket_group = "tandem-no-such-group"')
    assert rc == 2 and '[api] socket_group: no group named "tandem-no-such-group"' in err, err
    rc, err = start_refused(workdir, "", "--api_socket_mode", "0x1b0")
    assert rc == 2 and "socket_mode" in err, err


# ---------------------------------------------------------------- the Unix socket

def as_user(d, workdir, uid, gid, *args):
    """tandemctl status through the Unix socket as another user."""
    ctl_copy = workdir / "tandemctl"
    if not ctl_copy.exists():
        # The checkout may sit where other users cannot reach (/root).
        shutil.copy(ctl_binary(), ctl_copy)
        ctl_copy.chmod(0o755)
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                           str(ctl_copy), "--api", d.api, "--json", "--timeout", "5", *args],
                          capture_output=True, text=True, timeout=60)


def mode_of(path):
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    return stat.S_IMODE(st.st_mode), st.st_gid


@pytest.mark.parametrize("mode", ["0600", "0666", "0660"])
def test_socket_mode_from_config_decides_who_connects(workdir, mode):
    d = ControlDaemon(workdir, api_toml=f'socket_mode = "{mode}"')
    try:
        d.start()
        assert mode_of(d.socket) == (int(mode, 8), 0)
        p = as_user(d, workdir, NOBODY, NOBODY, "status")
        if mode == "0666":
            # It connects, and having no role ([api.roles]) is refused every call.
            assert p.returncode == 1, p.stderr
            assert one_line(p).startswith("tandemctl: PERMISSION_DENIED: GetStatus needs"), p.stderr
            assert f"uid {NOBODY}" in one_line(p), p.stderr
            p = as_user(d, workdir, NOBODY, NOBODY, "site", "create", "--name", "by-nobody")
            assert p.returncode == 1 and "PERMISSION_DENIED" in one_line(p), p.stderr
            assert sites(d) == []
        else:
            assert p.returncode == 3, p.stderr
            assert "Permission denied" in one_line(p), p.stderr
            p = as_user(d, workdir, NOBODY, NOBODY, "site", "create", "--name", "by-nobody")
            assert p.returncode == 3, p.stderr
            assert sites(d) == []
        # Root (the daemon's user) always can.
        assert d.ctl("status")["node"] == "ct"
        # Applied again at every start (the socket is made anew).
        d.stop()
        d.start()
        assert mode_of(d.socket) == (int(mode, 8), 0)
    finally:
        d.close()


def test_socket_group_from_config_lets_its_members_connect(workdir):
    d = ControlDaemon(workdir, api_toml='socket_mode = "0660"\nsocket_group = "nogroup"\n'
                                        '[api.roles]\nread_only = ["group:nogroup"]')
    try:
        d.start()
        assert mode_of(d.socket) == (0o660, 65534)
        p = as_user(d, workdir, NOBODY, 65534, "status")  # in group nogroup
        assert p.returncode == 0, p.stderr
        p = as_user(d, workdir, NOBODY, 4242, "status")  # not in it
        assert p.returncode == 3 and "Permission denied" in one_line(p), p.stderr
    finally:
        d.close()


def test_default_socket_mode_follows_the_umask(workdir):
    """Without socket_mode the socket keeps the mode it was created with:
    0755 under the usual umask 022, and connecting needs write permission, so
    only the daemon's user may connect."""

    class Umask022(ControlDaemon):
        def _spawn(self, argv, log):
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, umask=0o022)

    d = Umask022(workdir)
    try:
        d.start()
        assert mode_of(d.socket) == (0o755, 0)
        p = as_user(d, workdir, NOBODY, NOBODY, "status")
        assert p.returncode == 3 and "Permission denied" in one_line(p), p.stderr
        assert d.ctl("status")["node"] == "ct"
    finally:
        d.close()
