"""nginx for the tests of the nginx front (``ixazomib-cds serve --front nginx``), and a
self-signed certificate for its TLS.

``ensure_nginx()`` returns the nginx binary the service will find (``cds_service.nginx_front.
find_nginx``); when there is none (a fresh CI machine) it installs Debian's ``nginx`` package
with apt-get (as root), as tests/pg.py does for PostgreSQL. The tests never use a system
nginx: each starts its own, on a loopback port, through ``serve`` (where the machine lets
packages start services, Debian's package also starts its default site on port 80; containers
with a ``policy-rc.d`` that forbids it do not).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cds_service.nginx_front import find_nginx


class NginxUnavailable(RuntimeError):
    """nginx could not be found or installed; the message says why."""


def ensure_nginx() -> str:
    found = find_nginx()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise NginxUnavailable(
            "nginx is missing and cannot be installed here (needs root and apt-get); "
            "install the 'nginx' package"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another apt-get on the machine holds the lock for a while: wait for it.
    command = [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",
        "nginx",
    ]
    attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if attempt.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = find_nginx()
    if attempt.returncode != 0 or found is None:
        raise NginxUnavailable(
            f"apt-get install nginx failed:\n{attempt.stdout[-2000:]}{attempt.stderr[-2000:]}"
        )
    return found


def self_signed(directory: Path, name: str = "cds") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / f"{name}.crt"
    key_file = directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def local_copy_of_sidecar_config(
    directory: Path, *, cert: Path, key: Path, listen_port: int, upstream_port: int = 8081
) -> Path:
    """deploy/k8s/nginx.conf (the Kubernetes sidecar's) with the pod's paths moved into
    ``directory``, listening on 127.0.0.1:listen_port and passing to 127.0.0.1:upstream_port:
    the committed file itself, runnable here."""
    committed = Path(__file__).resolve().parent.parent / "deploy" / "k8s" / "nginx.conf"
    text = committed.read_text(encoding="utf-8").replace(" /tmp/", f" {directory}/")
    if "/tmp/" in text.replace(str(directory), ""):
        raise AssertionError("a /tmp path of the pod was not moved")
    replacements = {
        "/etc/nginx/tls/tls.crt": str(cert),
        "/etc/nginx/tls/tls.key": str(key),
        "listen 8443 ": f"listen 127.0.0.1:{listen_port} ",
        "server 127.0.0.1:8081;": f"server 127.0.0.1:{upstream_port};",
    }
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"{old!r} is not in {committed.name}")
        text = text.replace(old, new)
    directory.chmod(0o711)  # nginx started as root runs its workers as "nobody"
    conf = directory / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    return conf
