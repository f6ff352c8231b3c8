"""Certificates and keys for the control API's TLS tests, made with the
openssl CLI in a temp dir."""
import pathlib
import subprocess


class Pki:
    """Certificates and keys (PEM files) in one directory."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __getattr__(self, name):
        # pki.client_crt -> <dir>/client.crt
        stem, _, ext = name.rpartition("_")
        return self.path / f"{stem}.{ext}"

    def openssl(self, *args):
        p = subprocess.run(["openssl", *args], cwd=self.path, capture_output=True, text=True)
        assert p.returncode == 0, f"openssl {' '.join(args)}: {p.stderr}"

    def ca(self, name):
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
                     "-subj", f"/CN=Tandem test {name}")

    def leaf(self, name, ca, extensions):
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={name}")
        (self.path / f"{name}.ext").write_text(extensions)
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
                     f"{ca}.key", "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
                     "-extfile", f"{name}.ext")
