"""The token suite against the REAL server (gunicorn, 2 workers) with keys from a real JWKS host.

Every forged, stale, misdirected or replayed token gets a bare 401 (the generic
OperationOutcome and ``WWW-Authenticate: Bearer``, nothing about why); ES384 and RS384 tokens
from the JWKS served by ``jwks_server.JwksServer`` pass, also after the key set rotates; the
CDS Hooks Sandbox's tokens (its header and claims as recorded, its issuer's key configured
inline) pass whatever their ``jku`` says, and a ``jku`` is never fetched; no token, FHIR
access token or patient identifier ever reaches the logs, at any log level.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from builders import order_sign_request
from faulty_fhir_server import FaultyFhirServer, Mode
from integration.sandbox_recording import recorded
from jwks_server import JwksServer
from jwt_tools import (
    jwk_of,
    jwks_of,
    make_es256_key,
    make_es384_key,
    make_rs384_key,
    mint,
    mint_hmac_with_public_key,
    mint_unsigned,
    tamper,
    unverified_claims,
)
from live_server import LiveService, start_service

from reliability.support import GENERIC_401, assert_operation_outcome

ISSUER = "https://ehr.example.org"
# The Sandbox's issuer and header, as recorded; its private key is nobody's, so a key of the
# test's own stands in for it, configured inline under the recorded kid.
SANDBOX_HEADER = recorded("jwt_header")
SANDBOX_ISSUER = recorded("jwt_claims_example")["iss"]
# An issuer with keys both inline and at the JWKS URL.
BOTH_ISSUER = "https://two-key-sources.example.org"
DISCOVERY = "/cds-services"
SIGN = "/cds-services/ixazomib-order-sign"
SELECT = "/cds-services/ixazomib-order-select"


@dataclass
class Trusted:
    service: LiveService
    jwks: JwksServer
    keys: dict[str, Any]
    evil_jwks: JwksServer
    sandbox_key: Any
    inline_key: Any

    def url(self, path: str = DISCOVERY) -> str:
        return self.service.base_url + path

    def mint(self, kid: str = "es-1", path: str = DISCOVERY, **kwargs: Any) -> str:
        key = self.keys[kid]
        kwargs.setdefault("aud", self.url(path))
        kwargs.setdefault("iss", ISSUER)
        return mint(key, kid, **kwargs)


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trusted]:
    keys: dict[str, Any] = {"es-1": make_es384_key(), "rs-1": make_rs384_key()}
    with (
        JwksServer(jwks_of(*(jwk_of(k, kid) for kid, k in keys.items()))) as jwks,
        JwksServer(jwks_of(jwk_of(make_es384_key(), "evil"))) as evil,
    ):
        sandbox_key, inline_key = make_es384_key(), make_es384_key()
        issuers = tmp_path_factory.mktemp("issuers") / "trusted-issuers.json"
        issuers.write_text(json.dumps({"issuers": [
            {"iss": ISSUER, "jwks_url": jwks.url},
            {"iss": SANDBOX_ISSUER, "jwks": jwks_of(jwk_of(sandbox_key, SANDBOX_HEADER["kid"]))},
            {"iss": BOTH_ISSUER, "jwks": jwks_of(jwk_of(inline_key, "inline-1")),
             "jwks_url": jwks.url},
        ]}))
        service = start_service(
            workers=2,
            env={
                "CDS_TRUSTED_ISSUERS": str(issuers),
                "CDS_JWKS_MIN_REFRESH_SECONDS": "0",
                "CDS_FHIR_TIMEOUT_SECONDS": "0.5",
                "CDS_FHIR_DEADLINE_SECONDS": "1",
            },
        )
        try:
            yield Trusted(service, jwks, keys, evil, sandbox_key, inline_key)
        finally:
            service.stop()


def _get(trusted: Trusted, token: str | None, path: str = DISCOVERY) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return requests.get(trusted.url(path), headers=headers, timeout=10)


def _assert_bare_401(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert response.json() == GENERIC_401  # nothing about why


# -- accepted -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["es-1", "rs-1"])
def test_es384_and_rs384_tokens_from_the_jwks_host_pass(trusted: Trusted, kid: str) -> None:
    for _ in range(4):  # both workers fetch and use the key set
        assert _get(trusted, trusted.mint(kid)).status_code == 200


def test_a_service_call_with_a_fresh_token_passes(trusted: Trusted) -> None:
    token = trusted.mint(path=SIGN)
    response = requests.post(
        trusted.url(SIGN),
        json=order_sign_request(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


# -- refused: all bare 401 ------------------------------------------------------------------------

FORGERIES: dict[str, Callable[[Trusted], str | None]] = {
    "no header": lambda t: None,
    "alg none": lambda t: mint_unsigned("es-1", iss=ISSUER, aud=t.url()),
    "HS384 signed with the public key": lambda t: mint_hmac_with_public_key(
        t.keys["es-1"], "es-1", "HS384", iss=ISSUER, aud=t.url()
    ),
    "HS256 signed with the RSA public key": lambda t: mint_hmac_with_public_key(
        t.keys["rs-1"], "rs-1", "HS256", iss=ISSUER, aud=t.url()
    ),
    "wrong key, trusted kid": lambda t: mint(make_es384_key(), "es-1", iss=ISSUER, aud=t.url()),
    "ES256 with a P-256 key": lambda t: mint(make_es256_key(), "es-1", iss=ISSUER, aud=t.url()),
    "unknown kid": lambda t: t.mint(headers={"kid": "nobody"}),
    "expired": lambda t: t.mint(now=time.time() - 3600, lifetime_seconds=300),
    "not yet valid (nbf)": lambda t: t.mint(nbf=int(time.time()) + 600),
    "issued in the future": lambda t: t.mint(now=time.time() + 600),
    "lifetime too long": lambda t: t.mint(lifetime_seconds=7 * 24 * 3600),
    "wrong aud": lambda t: t.mint(aud="https://other-cds.example.org/cds-services"),
    "aud of another service path": lambda t: t.mint(aud=t.url(SIGN)),
    "unknown iss": lambda t: t.mint(iss="https://evil.example.org"),
    "jku outside the allow-list": lambda t: mint(
        make_es384_key(), "evil", iss=ISSUER, aud=t.url(), jku=t.evil_jwks.url
    ),
    "no jti": lambda t: t.mint(omit=("jti",)),
    "no exp": lambda t: t.mint(omit=("exp",)),
    "tampered payload": lambda t: tamper(t.mint(), sub="admin", exp=int(time.time()) + 3000),
    "tampered header (alg none)": lambda t: tamper(t.mint(), header={"alg": "none"}),
    "signature stripped": lambda t: t.mint().rsplit(".", 1)[0] + ".",
    "not a JWT": lambda t: "opaque-token-123",
    "huge token": lambda t: "a" * 17000 + ".b.c",
    # NumericDates no real token has: refused, never an OverflowError (500)
    "exp 10**400": lambda t: t.mint(exp=10**400),
    "iat 10**400": lambda t: t.mint(iat=10**400),
    "nbf 10**400": lambda t: t.mint(nbf=10**400),
    "exp -10**400": lambda t: t.mint(exp=-(10**400)),
    "exp 1e300": lambda t: t.mint(exp=1e300),
    "exp NaN": lambda t: t.mint(exp=float("nan")),
    "nbf NaN": lambda t: t.mint(nbf=float("nan")),
    "exp Infinity": lambda t: t.mint(exp=float("inf")),
    "iat true": lambda t: t.mint(iat=True),
    "Sandbox header, wrong key": lambda t: mint(
        make_es384_key(), SANDBOX_HEADER["kid"], "ES384", iss=SANDBOX_ISSUER, aud=t.url(),
        jku=SANDBOX_HEADER["jku"],
    ),
}


@pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
def test_forged_stale_and_misdirected_tokens_get_a_bare_401(trusted: Trusted, forgery: str) -> None:
    token = FORGERIES[forgery](trusted)
    _assert_bare_401(_get(trusted, token))
    if forgery == "jku outside the allow-list":
        assert trusted.evil_jwks.hits() == 0, "a URL outside the allow-list was contacted"


def _sandbox_token(trusted: Trusted, path: str) -> str:
    """A token as the Sandbox signs it: ES384, header kid + jku as recorded; claims iss, aud
    (the exact URL called), exp = iat + 300, jti; no sub."""
    token = mint(
        trusted.sandbox_key, SANDBOX_HEADER["kid"], "ES384", iss=SANDBOX_ISSUER,
        aud=trusted.url(path), jku=SANDBOX_HEADER["jku"], lifetime_seconds=300,
    )
    assert set(unverified_claims(token)) == set(recorded("jwt_claims_example"))
    return token


def test_the_cds_hooks_sandbox_token_is_accepted_on_every_call(trusted: Trusted) -> None:
    """Discovery, its recorded order-sign and order-select, and its recorded feedback: none
    is refused (today all got 401: "header 'jku' is not the issuer's allow-listed JWKS URL")."""
    assert _get(trusted, _sandbox_token(trusted, DISCOVERY)).status_code == 200
    for path, name in ((SIGN, "order_sign_request_without_prefetch"),
                       (SELECT, "order_select_request_without_prefetch_and_drafts")):
        response = requests.post(
            trusted.url(path), json=recorded(name), timeout=10,
            headers={"Authorization": f"Bearer {_sandbox_token(trusted, path)}"},
        )
        assert response.status_code != 401, (name, response.text)
        assert response.status_code < 500, (name, response.text)
        if path == SIGN:
            # authenticated; no prefetch, and this server does not query a FHIR server
            # without the EHR's token: the 412 names the setting that would allow it
            assert response.status_code == 412, response.text
            assert_operation_outcome(response.json(), mentions="CDS_ALLOW_OPEN_FHIR_SERVERS")
        else:
            # the recording has no draftOrders (REQUIRED at order-select): the 400 says so
            assert response.status_code == 400, response.text
            assert_operation_outcome(
                response.json(), mentions="MedicationRequest/request-123 was not checked"
            )
    for name in ("feedback_overridden", "feedback_accepted"):
        response = requests.post(
            trusted.url(SIGN + "/feedback"), json=recorded(name), timeout=10,
            headers={"Authorization": f"Bearer {_sandbox_token(trusted, SIGN + '/feedback')}"},
        )
        assert response.status_code == 200, (name, response.text)
    assert trusted.evil_jwks.hits() == 0


def test_a_configured_key_verifies_whatever_the_jku_and_no_jku_is_fetched(
    trusted: Trusted,
) -> None:
    fetched_before = trusted.jwks.hits()
    for jku in (trusted.evil_jwks.url, trusted.jwks.url_for("/elsewhere.json")):
        assert _get(trusted, trusted.mint(jku=jku)).status_code == 200  # es-1, from jwks_url
        # a key the operator did not configure: refused, and the jku is never contacted
        _assert_bare_401(_get(trusted, mint(make_es384_key(), "evil", iss=ISSUER,
                                            aud=trusted.url(), jku=jku)))
    assert trusted.evil_jwks.hits() == 0
    assert trusted.jwks.hits("/elsewhere.json") == 0
    assert trusted.jwks.hits() - fetched_before <= 2  # the allow-listed URL only (unknown kids)


def test_an_issuer_with_inline_keys_and_a_jwks_url_uses_both(trusted: Trusted) -> None:
    inline = mint(trusted.inline_key, "inline-1", iss=BOTH_ISSUER, aud=trusted.url())
    assert _get(trusted, inline).status_code == 200
    for kid in ("es-1", "rs-1"):
        by_url = mint(trusted.keys[kid], kid, iss=BOTH_ISSUER, aud=trusted.url())
        assert _get(trusted, by_url).status_code == 200, kid


def test_a_reused_jti_is_refused_whichever_worker_answers(trusted: Trusted) -> None:
    token = trusted.mint()
    assert _get(trusted, token).status_code == 200
    for _ in range(6):
        _assert_bare_401(_get(trusted, token))
    jti = str(uuid.uuid4())
    assert _get(trusted, trusted.mint(jti=jti)).status_code == 200
    _assert_bare_401(_get(trusted, trusted.mint(jti=jti)))  # same jti, new signature


def test_the_wrong_scheme_and_a_service_call_without_token_are_refused(trusted: Trusted) -> None:
    token = trusted.mint()
    response = requests.get(trusted.url(), headers={"Authorization": f"Basic {token}"}, timeout=5)
    _assert_bare_401(response)
    _assert_bare_401(requests.post(trusted.url(SIGN), json=order_sign_request(), timeout=5))
    _assert_bare_401(requests.post(trusted.url(SIGN + "/feedback"), json={}, timeout=5))


def test_cors_preflight_needs_no_token(trusted: Trusted) -> None:
    response = requests.options(
        trusted.url(SIGN),
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=5,
    )
    assert response.status_code < 300
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


# -- nothing secret in the logs -------------------------------------------------------------------


def order_sign_fetching(
    patient_id: str, fhir_server: str, access_token: str | None
) -> dict[str, Any]:
    """An order-sign call about ``patient_id`` (the draft order's subject too) with no
    prefetch, so the service fetches from ``fhir_server``, with ``access_token`` if given."""
    body = order_sign_request(prefetch={})
    body["context"]["patientId"] = patient_id
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["subject"] = {"reference": f"Patient/{patient_id}"}  # the same patient
    body["fhirServer"] = fhir_server
    if access_token is not None:
        body["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds",
            "patient": patient_id,
        }
    return body


def test_no_token_access_token_or_patient_id_in_any_log_line(trusted: Trusted) -> None:
    access_token = f"fhir-access-{uuid.uuid4().hex}"
    patient_id = f"pat-secret-{uuid.uuid4().hex[:12]}"
    tokens: list[str] = []
    with FaultyFhirServer() as fhir:
        for mode in (Mode.ERROR_500, Mode.UNAUTHORIZED, Mode.INVALID_JSON, Mode.HEALTHY):
            fhir.set_mode(mode)
            body = order_sign_fetching(patient_id, fhir.base_url, access_token)
            tokens.append(trusted.mint(path=SIGN))
            response = requests.post(
                trusted.url(SIGN),
                json=body,
                timeout=10,
                headers={"Authorization": f"Bearer {tokens[-1]}"},
            )
            assert response.status_code in (200, 412), response.text
        assert any(auth == f"Bearer {access_token}" for _, auth in fhir.requests)
    # refused tokens (logged as refusals), a malformed body with the patient id, a replay
    for token in (tokens[0], tamper(trusted.mint(), sub=patient_id), trusted.mint(aud="x")):
        tokens.append(token)
        requests.get(trusted.url(), headers={"Authorization": f"Bearer {token}"}, timeout=5)
    bad = {
        "hook": "order-sign",
        "hookInstance": "x",
        "context": {"patientId": patient_id},
        "fhirAuthorization": {"access_token": access_token},
    }
    tokens.append(trusted.mint(path=SIGN))
    requests.post(
        trusted.url(SIGN), json=bad, timeout=5, headers={"Authorization": f"Bearer {tokens[-1]}"}
    )
    time.sleep(0.5)  # let the workers flush their lines
    logs = trusted.service.logs()
    assert logs.count("\n") > 10
    for token in tokens:
        for part in token.split("."):
            if len(part) > 16:
                assert part not in logs, "a token (or part of one) is in the logs"
    assert "eyJ" not in logs
    assert access_token not in logs
    assert patient_id not in logs


# -- key rotation (last: afterwards only the new keys are published) ---------------------------


def test_tokens_signed_with_rotated_keys_pass(trusted: Trusted) -> None:
    new_keys: dict[str, Any] = {"es-2": make_es384_key(), "rs-2": make_rs384_key()}
    trusted.keys.update(new_keys)
    trusted.jwks.set_jwks(jwks_of(*(jwk_of(k, kid) for kid, k in new_keys.items())))
    for kid in ("es-2", "rs-2"):
        for _ in range(4):  # whichever worker answers re-fetches the set on the unknown kid
            assert _get(trusted, trusted.mint(kid)).status_code == 200, kid
    assert trusted.jwks.hits() >= 2
    _assert_bare_401(_get(trusted, trusted.mint("es-1", headers={"kid": "es-3"})))


# -- nothing secret in the logs at DEBUG either ---------------------------------------------------


def test_at_debug_no_token_or_patient_id_reaches_any_log_line() -> None:
    """CDS_LOG_LEVEL=DEBUG turns on every library's debug lines (urllib3 logs each request
    line it sends: the FHIR query with the patient id in it); redaction holds all the same."""
    access_token = f"fhir-access-{uuid.uuid4().hex}"
    patient_id = f"pat-debug-{uuid.uuid4().hex[:12]}"
    service = start_service(workers=1, env={"CDS_LOG_LEVEL": "DEBUG"})
    tokens: list[str] = []
    try:
        with FaultyFhirServer() as fhir:
            for authorized in (True, False):
                body = order_sign_fetching(
                    patient_id, fhir.base_url, access_token if authorized else None
                )
                tokens.append(service.token(SIGN))
                response = requests.post(
                    service.base_url + SIGN,
                    json=body,
                    timeout=15,
                    headers={"Authorization": f"Bearer {tokens[-1]}"},
                )
                assert response.status_code in (200, 412), response.text
            asked = [path for path, _ in fhir.requests]
            assert any(patient_id in path for path in asked), "no FHIR fetch happened"
        tokens.append(service.token(SIGN, aud="https://elsewhere.example"))  # refused
        requests.post(
            service.base_url + SIGN, json={}, timeout=5,
            headers={"Authorization": f"Bearer {tokens[-1]}"},
        )
        time.sleep(0.5)  # let the worker flush its lines
    finally:
        service.stop()
    logs = service.logs()
    assert '"level": "DEBUG"' in logs, "the service did not log at DEBUG"
    leaks = [
        line
        for line in logs.splitlines()
        if patient_id in line
        or access_token in line
        or "eyJ" in line
        or any(part in line for token in tokens for part in token.split(".") if len(part) > 16)
    ]
    assert not leaks, "\n".join(leaks[:5])
