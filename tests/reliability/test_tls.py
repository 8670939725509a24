"""TLS ends at the nginx front: ``serve --front nginx`` with ``CDS_TLS_CERT_FILE`` and
``CDS_TLS_KEY_FILE`` speaks https only.

A real TLS handshake: the test makes a self-signed certificate for 127.0.0.1 (``cryptography``),
starts the service behind the real nginx with it, and calls over https with ``requests``
verifying the server against that certificate (and failing against another one). The
Kubernetes sidecar's configuration (deploy/k8s/nginx.conf, the committed file) is run the same
way in front of the app on a loopback TCP port, as in the pod.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cds_assertions import assert_conformant_response
from cryptography import x509
from live_server import LiveService, free_port, start_service
from nginx_server import ensure_nginx, local_copy_of_sidecar_config, self_signed

from cds_service.fixtures import Scenario
from reliability.support import assert_operation_outcome


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


def test_the_front_refuses_an_oversized_body_with_an_operation_outcome(
    live: LiveService,
) -> None:
    path = "/cds-services/ixazomib-order-sign"
    response = requests.post(
        live.base_url + path,
        data=b"{" + b" " * (8 * 1024 * 1024 + 10) + b"}",
        headers={**live.headers(path), "Content-Type": "application/json"},
        verify=live.verify,
        timeout=30,
    )
    assert response.status_code == 413
    assert_operation_outcome(response.json(), mentions="larger than 8388608 bytes")


def test_the_kubernetes_sidecar_config_serves_https(
    tmp_path: Path, scenarios: dict[str, Scenario]
) -> None:
    """deploy/k8s/nginx.conf run by the real nginx in front of the app on a loopback TCP port,
    as in the pod (paths and ports moved to this machine's)."""
    nginx = ensure_nginx()
    front_port = free_port()
    front_url = f"https://127.0.0.1:{front_port}"
    app = start_service(workers=2, env={"CDS_BASE_URL": front_url})
    cert, key = self_signed(tmp_path)
    conf = local_copy_of_sidecar_config(
        tmp_path, cert=cert, key=key, listen_port=front_port, upstream_port=_port(app)
    )
    sidecar = subprocess.Popen(
        [nginx, "-e", "stderr", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"]
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{front_url}/healthz", verify=str(cert), timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the sidecar did not start"
                time.sleep(0.1)
        scenario = scenarios["hep-moderate"]
        path = f"/cds-services/{scenario.service}"
        response = requests.post(
            front_url + path,
            json=scenario.cds_request(prefetch=True),
            headers=app.headers(path, aud=front_url + path),
            verify=str(cert),
            timeout=15,
        )
        assert response.status_code == 200, response.text[:500]
        assert_conformant_response(response.json())
        assert response.json()["cards"]
    finally:
        sidecar.send_signal(signal.SIGQUIT)
        sidecar.wait(timeout=15)
        app.stop()
