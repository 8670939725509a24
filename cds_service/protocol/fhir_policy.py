"""Whether a hook call may make the service query the FHIR server it names, and how.

Decided once per request, before anything is fetched (``routes.call_service``):

* ``fhirAuthorization`` needs ``fhirServer`` (CDS Hooks 2.0);
* an issuer configured with ``fhir_servers`` (in ``CDS_TRUSTED_ISSUERS``) may name only those
  FHIR base URLs; any other is a 400 that says just that. The server named is never
  contacted, and the answer is the same whatever is (or is not) at that address, so the
  service cannot be used to map the network it runs in;
* the EHR's access token travels only over https, or plain http to a loopback host (a FHIR
  server on the same machine); ``CDS_ALLOW_PLAIN_HTTP_FHIR=true`` lifts this for test
  set-ups, never for production. Otherwise a 400, before the token is sent anywhere;
* CDS Hooks says each FHIR call carries the token of ``fhirAuthorization``. A request that
  names ``fhirServer`` but sends no token is fetched for only with
  ``CDS_ALLOW_OPEN_FHIR_SERVERS=true`` (open test servers that need no token, as the CDS Hooks
  Sandbox's do; ``make serve`` sets it). Without it nothing is fetched: what was not
  prefetched is unavailable, for a reason that names the setting (a 412 when it is required).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cds_service.config import Config
from cds_service.errors import BadRequest
from cds_service.protocol.envelope import HookRequest
from cds_service.rules.inputs import PatientRecord

OPEN_SERVERS_SETTING = "CDS_ALLOW_OPEN_FHIR_SERVERS"
PLAIN_HTTP_SETTING = "CDS_ALLOW_PLAIN_HTTP_FHIR"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_fhir_server(
    request: HookRequest, config: Config, allowed_servers: frozenset[str] | None
) -> str | None:
    """Raise BadRequest for a ``fhirServer`` the service must not use; otherwise return None
    when it may be queried (or none is named), or why it may not be (nothing is fetched)."""
    server = request.fhirServer
    if server is None:
        if request.fhirAuthorization is not None:
            raise BadRequest("fhirServer is required when fhirAuthorization is sent.")
        return None
    if allowed_servers is not None and _base_or_none(server) not in allowed_servers:
        raise BadRequest(
            "fhirServer is not one of the FHIR servers configured for this client; the "
            "operator of this CDS service lists them in the issuer's 'fhir_servers'."
        )
    parts = urlsplit(server)
    if request.fhirAuthorization is None:
        if config.allow_open_fhir_servers:
            return None
        return (
            "the FHIR server was not queried: the request sent fhirServer without "
            "fhirAuthorization, and this service queries a FHIR server without the EHR's "
            f"access token only when {OPEN_SERVERS_SETTING}=true (open test servers)"
        )
    if (
        parts.scheme.lower() == "http"
        and not is_loopback_host(parts.hostname or "")
        and not config.allow_plain_http_fhir
    ):
        raise BadRequest(
            "fhirServer must be an https URL when fhirAuthorization is sent: the access token "
            "is never sent over plain HTTP except to a loopback address."
        )
    return None


def not_fetched(record: PatientRecord, why: str) -> None:
    """Say ``why`` for everything the record lacks: gathered without a FHIR server because the
    policy forbade querying the one named, it lacks exactly what would have been fetched."""
    for key in record.unavailable:
        record.unavailable[key] = why


def fhir_base(url: str) -> str:
    """``url`` as a FHIR base URL in one spelling (scheme and host in lower case, no default
    port, no trailing slash), so that allow-listed URLs compare with what requests name.
    Raises ValueError for what is not an http(s) base URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = parts.hostname
    if (
        scheme not in _DEFAULT_PORTS
        or not host
        or port == -1
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"not a FHIR base URL (http(s)://host[:port]/path, without user, query or "
            f"fragment): {url!r}"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_or_none(url: str) -> str | None:
    try:
        return fhir_base(url)
    except ValueError:
        return None
