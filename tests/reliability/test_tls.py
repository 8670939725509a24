"""TLS ends at the nginx front: ``serve --front nginx`` with ``CDS_TLS_CERT_FILE`` and
``CDS_TLS_KEY_FILE`` speaks https only.

A real TLS handshake: the test makes a self-signed certificate for 127.0.0.1 (``cryptography``),
starts the service behind the real nginx with it, and calls over https with ``requests``
verifying the server against that certificate (and failing against another one).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cds_assertions import assert_conformant_response
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from live_server import LiveService, start_service
from nginx_server import ensure_nginx

from cds_service.fixtures import Scenario
from reliability.support import assert_operation_outcome


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


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    ensure_nginx()
    service = start_service(workers=2, tls=self_signed(tmp_path_factory.mktemp("tls")))
    yield service
    service.stop()


def _port(live: LiveService) -> int:
    return int(live.base_url.rsplit(":", 1)[1])


def test_order_sign_over_verified_https(live: LiveService, scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["hep-moderate"]
    path = f"/cds-services/{scenario.service}"
    assert live.base_url.startswith("https://")
    response = requests.post(
        live.base_url + path,
        json=scenario.cds_request(prefetch=True),
        headers=live.headers(path),  # aud: the https URL
        verify=live.verify,
        timeout=15,
    )
    assert response.status_code == 200, response.text[:500]
    assert_conformant_response(response.json())
    assert response.json()["cards"]


def test_the_handshake_is_tls_1_2_or_newer_with_the_served_certificate(
    live: LiveService,
) -> None:
    context = ssl.create_default_context(cafile=str(live.verify))
    with (
        socket.create_connection(("127.0.0.1", _port(live)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
    expected = x509.load_pem_x509_certificate(Path(str(live.verify)).read_bytes())
    assert served == expected


def test_a_client_trusting_another_certificate_refuses_the_server(
    live: LiveService, tmp_path: Path
) -> None:
    other_cert, _ = self_signed(tmp_path, "other")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{live.base_url}/healthz", verify=str(other_cert), timeout=5)


def test_plain_http_on_the_tls_port_is_refused_with_an_operation_outcome(
    live: LiveService,
) -> None:
    plain = live.base_url.replace("https://", "http://")
    response = requests.get(f"{plain}/cds-services", timeout=5)
    assert response.status_code == 400
    assert_operation_outcome(response.json(), mentions="HTTPS")
