"""cds_service.auth with real keys, real signatures and a real JWKS host on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from integration.sandbox_recording import recorded
from jwks_server import JwksServer
from jwt.api_jws import PyJWS
from jwt_tools import (
    DEFAULT_AUD,
    DEFAULT_ISS,
    MemoryJtiStore,
    jwk_of,
    jwks_of,
    make_ed25519_key,
    make_es256_key,
    make_es384_key,
    make_rs384_key,
    mint,
    mint_hmac_with_public_key,
    mint_unsigned,
    tamper,
    unverified_claims,
)

from cds_service.auth import (
    AuthenticationError,
    Authenticator,
    TrustedIssuer,
    load_trusted_issuers,
)

EsKey = ec.EllipticCurvePrivateKey
RsKey = rsa.RSAPrivateKey
BASE = "https://cds.example.org"
AUDIENCES = [BASE, DEFAULT_AUD]


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def es_key() -> EsKey:
    return make_es384_key()


@pytest.fixture(scope="module")
def rs_key() -> RsKey:
    return make_rs384_key()


@pytest.fixture(scope="module")
def other_key() -> EsKey:
    return make_es384_key()


@pytest.fixture(scope="module")
def new_key() -> EsKey:
    return make_es384_key()


@pytest.fixture
def jti_store() -> MemoryJtiStore:
    return MemoryJtiStore()


@pytest.fixture
def jwks_host(es_key: EsKey, rs_key: RsKey) -> Iterator[JwksServer]:
    with JwksServer(jwks_of(jwk_of(es_key, "es-1"), jwk_of(rs_key, "rs-1"))) as server:
        yield server


@pytest.fixture
def inline_issuer(es_key: EsKey, rs_key: RsKey) -> TrustedIssuer:
    return TrustedIssuer(DEFAULT_ISS, jwks=jwks_of(jwk_of(es_key, "es-1"), jwk_of(rs_key, "rs-1")))


@pytest.fixture
def auth(inline_issuer: TrustedIssuer, jti_store: MemoryJtiStore) -> Authenticator:
    return Authenticator([inline_issuer], jti_store)


class FakeMonotonic:
    """A monotonic clock the test advances by hand (for the JWKS refresh rate limit)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def url_auth(
    jwks_host: JwksServer, jti_store: MemoryJtiStore
) -> tuple[Authenticator, FakeMonotonic]:
    clock = FakeMonotonic()
    issuer = TrustedIssuer(DEFAULT_ISS, jwks_url=jwks_host.url)
    return Authenticator([issuer], jti_store, monotonic=clock, fetch_timeout_seconds=1.0), clock


def bearer(token: str) -> str:
    return f"Bearer {token}"


def refused(
    auth: Authenticator, token: str, reason: str = "", audiences: list[str] | None = None
) -> str:
    """Assert the token is refused; the message says ``reason`` and leaks nothing of the token."""
    with pytest.raises(AuthenticationError) as info:
        auth.verify(bearer(token), audiences or AUDIENCES)
    message = str(info.value)
    assert reason in message
    for segment in token.split("."):
        if len(segment) > 8:
            assert segment not in message
    try:
        claims = unverified_claims(token)
    except ValueError:
        claims = {}
    for name in ("jti", "sub", "tenant", "aud"):
        if isinstance(claims.get(name), str) and claims[name]:
            assert claims[name] not in message, f"claim {name} leaked into {message!r}"
    return message


# -- accepted tokens ------------------------------------------------------------------------------
@pytest.mark.parametrize(("kid", "alg"), [("es-1", "ES384"), ("rs-1", "RS384")])
def test_inline_jwks_accepts_es384_and_rs384(
    auth: Authenticator, es_key: EsKey, rs_key: RsKey,
    kid: str, alg: str,
) -> None:
    key = es_key if alg == "ES384" else rs_key
    token = mint(key, kid, alg, tenant="hospital-a", sub="client-app")
    claims = auth.verify(bearer(token), AUDIENCES)
    assert claims["iss"] == DEFAULT_ISS
    assert claims["tenant"] == "hospital-a"
    assert claims["aud"] == DEFAULT_AUD


@pytest.mark.parametrize(("kid", "alg"), [("es-1", "ES384"), ("rs-1", "RS384")])
def test_jwks_url_accepts_es384_and_rs384(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey, rs_key: RsKey, kid: str, alg: str,
) -> None:
    auth, _ = url_auth
    key = es_key if alg == "ES384" else rs_key
    assert auth.verify(bearer(mint(key, kid, alg)), AUDIENCES)["iss"] == DEFAULT_ISS
    # keys are cached: a second token needs no second fetch
    assert auth.verify(bearer(mint(key, kid, alg)), AUDIENCES)
    assert jwks_host.hits() == 1


def test_jku_equal_to_allow_listed_url_is_accepted(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey,
) -> None:
    auth, _ = url_auth
    assert auth.verify(bearer(mint(es_key, "es-1", jku=jwks_host.url)), AUDIENCES)


@pytest.mark.parametrize(
    "aud",
    [DEFAULT_AUD, DEFAULT_AUD + "/", BASE, BASE + "/", ["https://other.example", DEFAULT_AUD]],
)
def test_audience_matches_exactly_modulo_trailing_slash(
    auth: Authenticator, es_key: EsKey, aud: str | list[str]
) -> None:
    assert auth.verify(bearer(mint(es_key, "es-1", aud=aud)), AUDIENCES)


def test_scheme_is_case_insensitive(auth: Authenticator, es_key: EsKey) -> None:
    assert auth.verify("bearer " + mint(es_key, "es-1"), AUDIENCES)


def test_clock_skew_within_leeway_is_tolerated(
    auth: Authenticator, es_key: EsKey
) -> None:
    now = int(time.time())
    assert auth.verify(bearer(mint(es_key, "es-1", iat=now - 300, exp=now - 10)), AUDIENCES)
    assert auth.verify(bearer(mint(es_key, "es-1", iat=now + 10, exp=now + 300)), AUDIENCES)
    assert auth.verify(bearer(mint(es_key, "es-1", nbf=now + 10)), AUDIENCES)


def test_jti_is_claimed_per_issuer_until_exp_plus_leeway(
    auth: Authenticator, jti_store: MemoryJtiStore, es_key: EsKey
) -> None:
    now = int(time.time())
    auth.verify(bearer(mint(es_key, "es-1", jti="abc", exp=now + 120, iat=now)), AUDIENCES)
    assert jti_store.calls == [
        (DEFAULT_ISS, "abc", datetime.fromtimestamp(now + 120 + 30, tz=UTC))
    ]


def test_other_asymmetric_algorithms_only_when_configured(
    inline_issuer: TrustedIssuer, jti_store: MemoryJtiStore
) -> None:
    es256, ed = make_es256_key(), make_ed25519_key()
    issuer = TrustedIssuer(DEFAULT_ISS, jwks=jwks_of(jwk_of(es256, "p256"), jwk_of(ed, "ed")))
    with pytest.raises(ValueError, match="no inline key is usable"):
        Authenticator([issuer], jti_store)  # neither key fits ES384/RS384
    wide = Authenticator([issuer], jti_store, algorithms=("ES384", "ES256", "EdDSA"))
    assert wide.verify(bearer(mint(es256, "p256")), AUDIENCES)
    assert wide.verify(bearer(mint(ed, "ed")), AUDIENCES)
    narrow = Authenticator([inline_issuer], jti_store)
    refused(narrow, mint(es256, "es-1"), "algorithm 'ES256' is not accepted")


# -- refused: the header --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        ("Basic dXNlcjpwYXNz", "not a Bearer token"),
        ("Bearer", "empty"),
        ("Bearer    ", "empty"),
        ("Bearer garbage", "not a signed JWT"),
        ("Bearer a.b.c", "not a well-formed JWT"),
        ("Bearer e30.e30.e30", "algorithm '?' is not accepted"),  # {} header: no alg
        ("Bearer " + "a" * 20000, "longer than"),
        ("Bearer a.b.c.d.e", "not a signed JWT"),  # JWE shape
    ],
)
def test_malformed_authorization_is_refused(
    auth: Authenticator, header: str | None, reason: str
) -> None:
    with pytest.raises(AuthenticationError, match=re.escape(reason)):
        auth.verify(header, AUDIENCES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- the service against PyJWT's own decoding, on mutated tokens ---------------------------------
# The reference: a verifier built from PyJWT's public API alone, configured as the service is
# (the issuer's key chosen by the header's kid from its key set, as PyJWKClient does; the same
# algorithms, issuer, audiences and leeway; the claims the service requires).
REFERENCE_AUDIENCES = AUDIENCES + [audience + "/" for audience in AUDIENCES]
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


def _pyjwt_verdict(token: str, key_set: jwt.PyJWKSet) -> str:
    """``"malformed"`` (not a JWS PyJWT can read), ``"refused"`` or ``"accepted"``."""
    try:
        decoded = PyJWS().decode_complete(token, options={"verify_signature": False})
        if not isinstance(json.loads(decoded["payload"]), dict):
            return "malformed"
    except Exception:
        return "malformed"
    try:
        jwt.decode(
            token, key=key_set[decoded["header"]["kid"]], algorithms=["ES384", "RS384"],
            audience=REFERENCE_AUDIENCES, issuer=DEFAULT_ISS, leeway=30,
            options={"require": REQUIRED_CLAIMS},
        )
    except (jwt.PyJWTError, KeyError):
        return "refused"
    return "accepted"


def _service_verdict(issuer: TrustedIssuer, token: str) -> tuple[str, str]:
    """The service's verdict and its reason; a fresh replay store, as PyJWT keeps none."""
    try:
        Authenticator([issuer], MemoryJtiStore()).verify(bearer(token), AUDIENCES)
    except AuthenticationError as error:
        reason = str(error)
        shape = re.match(r"Bearer token is not a (well-formed|signed) JWT", reason)
        return ("malformed" if shape else "refused"), reason
    return "accepted", ""


def _character_swaps(token: str) -> list[str]:
    """The token with each character in turn replaced by the next of the base64url alphabet
    (in the last character of a segment this may only change unused bits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return [
        token[:i] + alphabet[(alphabet.index(ch) + 1) % 64] + token[i + 1:]
        for i, ch in enumerate(token) if ch != "."
    ]


def _mutations(es_key: EsKey, rs_key: RsKey, other_key: EsKey) -> list[str]:
    """Tokens the service and PyJWT must decide alike: malformed, forged, re-signed with
    changed claims or headers, and ones both accept."""
    token = mint(es_key, "es-1")
    header, payload, signature = token.split(".")
    real_header = json.loads(base64.urlsafe_b64decode(header + "=="))
    now = int(time.time())

    def with_header(**changes: Any) -> str:
        return ".".join((_b64(json.dumps({**real_header, **changes}).encode()), payload, signature))

    flipped = chr(ord(signature[-1]) ^ 1)  # the last character carries unused bits
    return [
        *_character_swaps(token),
        token,
        mint(rs_key, "rs-1"),
        f"{header}.{payload}.{signature[:-1]}{flipped}",
        f"{header}.{payload[:-1]}{chr(ord(payload[-1]) ^ 1)}.{signature}",
        f"{header}.{payload}.{signature}A",  # a length no encoder produces
        f"{header}.{payload}x.{signature}",
        f"{header}.{payload}.{signature[:-4]}",
        f"{header}.{payload}.{signature}{signature[-4:]}",
        f"{_b64(b'[1]')}.{payload}.{signature}",
        f"{header}.{_b64(b'[1]')}.{signature}",
        f"{header}.{_b64(b'{not json')}.{signature}",
        f"{_b64(b'{not json')}.{payload}.{signature}",
        f"{header}.{_b64(b'7')}.{signature}",
        f"{header}.{_b64(bytes([0xFF, 0xFE]))}.{signature}",
        with_header(kid=7),
        with_header(kid=None),
        with_header(crit=["b64"]),
        with_header(crit=[]),
        with_header(crit="b64", b64=True),
        with_header(crit=["exp"], exp=1),
        with_header(crit=[1]),
        with_header(b64=False),
        with_header(b64=False, crit=["b64"]),
        with_header(alg=None),
        with_header(alg="RS384"),
        tamper(token, tenant="hospital-b"),
        tamper(token, header={"kid": "rs-1"}),
        # signed by the issuer's key, so only the service's checks and PyJWT's can refuse them
        mint(es_key, "es-1", headers={"crit": ["exp"], "exp": 1}),
        mint(es_key, "es-1", headers={"kid": 7}),
        mint(es_key, "nope"),
        mint(es_key, "rs-1", "ES384"),
        mint(rs_key, "es-1", "RS384"),
        mint(rs_key, "rs-1", "PS384"),
        mint(other_key, "es-1"),
        mint_hmac_with_public_key(es_key, "es-1", "HS384"),
        mint_unsigned("es-1") + "c2ln",
        mint(es_key, "es-1", iss="https://evil.example"),
        mint(es_key, "es-1", aud="https://evil.example"),
        mint(es_key, "es-1", aud=BASE + ".evil.example"),
        mint(es_key, "es-1", aud=DEFAULT_AUD + "/x"),
        mint(es_key, "es-1", aud=["https://other.example", BASE + "/"]),
        mint(es_key, "es-1", aud=[1]),
        mint(es_key, "es-1", iat=now - 400, exp=now - 31),
        mint(es_key, "es-1", iat=now - 300, exp=now - 10),
        mint(es_key, "es-1", nbf=now + 120),
        mint(es_key, "es-1", nbf=now + 10),
        mint(es_key, "es-1", iat=now + 120, exp=now + 400),
        mint(es_key, "es-1", iat=now + 10, exp=now + 300),
        mint(es_key, "es-1", exp="soon"),
        mint(es_key, "es-1", nbf=float("nan")),
        mint(es_key, "es-1", jti=12345),
        mint(es_key, "es-1", sub=42),
        *(mint(es_key, "es-1", omit=(claim,)) for claim in REQUIRED_CLAIMS),
    ]


def test_verify_decides_as_pyjwt_decode_on_mutated_tokens(
    inline_issuer: TrustedIssuer, es_key: EsKey, rs_key: RsKey, other_key: EsKey
) -> None:
    """The service accepts exactly what PyJWT's decode accepts, and calls malformed exactly
    what PyJWT cannot read (the service's stricter rules are held apart, in the next test)."""
    key_set = jwt.PyJWKSet.from_dict(inline_issuer.jwks or {})
    verdicts: dict[str, int] = {}
    for token in _mutations(es_key, rs_key, other_key):
        expected = _pyjwt_verdict(token, key_set)
        verdict, reason = _service_verdict(inline_issuer, token)
        assert verdict == expected, (token, expected, reason)
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    assert min(verdicts.get(kind, 0) for kind in ("accepted", "refused", "malformed")) >= 5


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"typ": None}, "'typ' must be 'JWT'"),
        ({"typ": "at+jwt"}, "'typ' must be 'JWT'"),
        ({"headers": {"crit": ["b64"], "b64": True}}, "critical extensions"),
        ({"iat": 1_000_000_000, "exp": 4_000_000_000}, "lifetime exceeds"),
        # Seconds from now, made absolute when the test runs (the list is built at collection).
        ({"iat": "+10", "exp": "+10"}, "'exp' is not after"),
        ({"exp": 10**400}, "NumericDate"),
        ({"iat": True}, "NumericDate"),
        ({"iat": -1}, "NumericDate"),
        ({"jti": "x" * 300}, "'jti'"),
        ({"tenant": {"id": 1}}, "'tenant' must be a string"),
    ],
)
def test_where_the_service_is_stricter_than_pyjwt(
    inline_issuer: TrustedIssuer, es_key: EsKey, changes: dict[str, Any], reason: str
) -> None:
    """Tokens PyJWT's decode accepts and the service refuses, by a rule of its own."""
    now = int(time.time())
    changes = {
        name: now + int(value) if isinstance(value, str) and value.startswith("+") else value
        for name, value in changes.items()
    }
    token = mint(es_key, "es-1", **changes)
    key_set = jwt.PyJWKSet.from_dict(inline_issuer.jwks or {})
    assert _pyjwt_verdict(token, key_set) == "accepted"
    verdict, message = _service_verdict(inline_issuer, token)
    assert verdict == "refused"
    assert reason in message


def test_alg_none_is_refused(auth: Authenticator) -> None:
    token = mint_unsigned("es-1")
    with pytest.raises(AuthenticationError, match="not a signed JWT"):
        auth.verify(bearer(token), AUDIENCES)  # empty signature segment
    # even with some signature bytes appended, 'none' is not an accepted algorithm
    refused(auth, token + "c2ln", "algorithm 'none' is not accepted")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_the_public_key_is_refused(
    auth: Authenticator, es_key: EsKey, rs_key: RsKey, alg: str
) -> None:
    for key, kid in ((es_key, "es-1"), (rs_key, "rs-1")):
        token = mint_hmac_with_public_key(key, kid, alg)
        refused(auth, token, f"algorithm '{alg}' is not accepted")
        as_jwk = json.dumps(jwk_of(key, kid)).encode()
        refused(auth, mint_hmac_with_public_key(key, kid, alg, secret=as_jwk), "not accepted")


def test_hmac_is_refused_even_if_an_oct_key_is_published(
    jti_store: MemoryJtiStore, es_key: EsKey
) -> None:
    oct_jwk = {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}
    with JwksServer(jwks_of(jwk_of(es_key, "es-1"), oct_jwk)) as server:
        auth = Authenticator([TrustedIssuer(DEFAULT_ISS, jwks_url=server.url)], jti_store)
        assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)  # the oct key is skipped
        token = mint_hmac_with_public_key(
            es_key, "hmac", "HS256", secret=b"secret-secret-secret-secret-secret"
        )
        refused(auth, token, "not accepted")
    with pytest.raises(ValueError, match="'oct' is not an asymmetric"):
        Authenticator([TrustedIssuer(DEFAULT_ISS, jwks=jwks_of(oct_jwk))], jti_store)


def test_wrong_key_with_the_right_kid_is_refused(
    auth: Authenticator, other_key: EsKey
) -> None:
    refused(auth, mint(other_key, "es-1"), "signature verification failed")


def test_key_is_bound_to_its_algorithm(
    auth: Authenticator, rs_key: RsKey
) -> None:
    # the RSA key's kid with ES384 in the header: no (kid, ES384) key exists
    refused(auth, mint(rs_key, "rs-1", "RS384", headers={"alg": "ES384"}), "no key with this kid")
    # PS384 is not configured, so the RSA key cannot be used with it
    refused(auth, mint(rs_key, "rs-1", "PS384"), "algorithm 'PS384' is not accepted")


def test_unknown_kid_is_refused(auth: Authenticator, es_key: EsKey) -> None:
    refused(auth, mint(es_key, "nope"), "no key with this kid")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"omit": ("kid",)}, "'kid' is missing"),
        ({"headers": {"kid": 7}}, "not a well-formed JWT"),
        ({"typ": None}, "'typ' must be 'JWT'"),
        ({"typ": "at+jwt"}, "'typ' must be 'JWT'"),
        ({"headers": {"crit": ["exp"], "exp": 1}}, "not a well-formed JWT"),
        ({"headers": {"crit": ["b64"], "b64": True}}, "critical extensions"),
    ],
)
def test_bad_headers_are_refused(
    auth: Authenticator, es_key: EsKey, changes: dict[str, Any], reason: str
) -> None:
    refused(auth, mint(es_key, "es-1", **changes), reason)


def test_lowercase_typ_is_accepted(auth: Authenticator, es_key: EsKey) -> None:
    assert auth.verify(bearer(mint(es_key, "es-1", typ="jwt")), AUDIENCES)


# -- refused: the claims --------------------------------------------------------------------------
def test_expired_is_refused(auth: Authenticator, es_key: EsKey) -> None:
    now = int(time.time())
    refused(auth, mint(es_key, "es-1", iat=now - 400, exp=now - 31), "token expired")


def test_not_yet_valid_nbf_is_refused(auth: Authenticator, es_key: EsKey) -> None:
    refused(auth, mint(es_key, "es-1", nbf=int(time.time()) + 120), "not yet valid (nbf)")


def test_iat_in_the_future_is_refused(auth: Authenticator, es_key: EsKey) -> None:
    now = int(time.time())
    refused(auth, mint(es_key, "es-1", iat=now + 120, exp=now + 400), "'iat' is in the future")


def test_too_long_lifetime_is_refused(auth: Authenticator, es_key: EsKey) -> None:
    now = int(time.time())
    refused(auth, mint(es_key, "es-1", iat=now, exp=now + 3601), "lifetime exceeds 3600")
    refused(auth, mint(es_key, "es-1", iat=now, exp=now), "'exp' is not after 'iat'")


@pytest.mark.parametrize(
    "aud", ["https://cds.example.org/cds-services/other", "https://evil.example", [], [1], 5]
)
def test_wrong_audience_is_refused(
    auth: Authenticator, es_key: EsKey, aud: Any
) -> None:
    refused(auth, mint(es_key, "es-1", aud=aud), "'aud'")


def test_audience_is_not_a_prefix_match(
    auth: Authenticator, es_key: EsKey
) -> None:
    refused(auth, mint(es_key, "es-1", aud=BASE + ".evil.example"), "does not name this service")
    refused(auth, mint(es_key, "es-1", aud=DEFAULT_AUD + "x"), "does not name this service")


def test_unknown_issuer_is_refused(auth: Authenticator, es_key: EsKey) -> None:
    token = mint(es_key, "es-1", iss="https://evil.example")
    message = refused(auth, token, "issuer is not trusted")
    assert "https://evil.example" in message  # iss may be named, it helps the operator


@pytest.mark.parametrize("missing", ["jti", "exp", "iat", "aud", "iss"])
def test_missing_required_claim_is_refused(
    auth: Authenticator, es_key: EsKey, missing: str
) -> None:
    refused(auth, mint(es_key, "es-1", omit=(missing,)), repr(missing))


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": "soon"}, "NumericDate"),
        ({"iat": True}, "NumericDate"),
        ({"jti": ""}, "'jti'"),
        ({"jti": 12345}, "'jti'"),
        ({"jti": "x" * 300}, "'jti'"),
        ({"tenant": {"id": 1}}, "'tenant' must be a string"),
        ({"sub": 42}, "'sub' must be a string"),
        # NumericDates of any size, NaN, infinities, booleans: refused, never an OverflowError
        ({"exp": 10**400}, "NumericDate"),
        ({"iat": 10**400}, "NumericDate"),
        ({"nbf": 10**400}, "NumericDate"),
        ({"exp": -(10**400)}, "NumericDate"),
        ({"exp": 1e300}, "NumericDate"),
        ({"iat": 1e300, "exp": 1e300 + 1}, "NumericDate"),
        ({"exp": float("nan")}, "NumericDate"),
        ({"nbf": float("nan")}, "NumericDate"),
        ({"exp": float("inf")}, "NumericDate"),
        ({"iat": float("-inf")}, "NumericDate"),
        ({"nbf": False}, "NumericDate"),
        ({"iat": -1}, "NumericDate"),
    ],
)
def test_ill_typed_claims_are_refused(
    auth: Authenticator, es_key: EsKey, claims: dict[str, Any], reason: str
) -> None:
    refused(auth, mint(es_key, "es-1", **claims), reason)


def test_reused_jti_is_refused(auth: Authenticator, es_key: EsKey) -> None:
    token = mint(es_key, "es-1", jti="once-only")
    assert auth.verify(bearer(token), AUDIENCES)
    refused(auth, token, "replayed")
    refused(auth, mint(es_key, "es-1", jti="once-only"), "replayed")  # new token, same jti


def test_concurrent_replay_lets_exactly_one_through(
    auth: Authenticator, es_key: EsKey
) -> None:
    token = mint(es_key, "es-1")
    outcomes: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            auth.verify(bearer(token), AUDIENCES)
            ok = True
        except AuthenticationError:
            ok = False
        with lock:
            outcomes.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 15 + [True]


def test_failing_jti_store_refuses_not_crashes(
    inline_issuer: TrustedIssuer, es_key: EsKey, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(iss: str, jti: str, expires_at: datetime) -> bool:
        raise ConnectionError(f"database is down; key (iss, jti)=({iss}, {jti})")

    auth = Authenticator([inline_issuer], broken)
    caplog.set_level(logging.DEBUG)
    refused(auth, mint(es_key, "es-1", jti="secret-jti"), "replay check")
    assert "ConnectionError" in caplog.text
    assert "secret-jti" not in caplog.text


def test_invalid_tokens_do_not_consume_the_jti(
    auth: Authenticator, jti_store: MemoryJtiStore, es_key: EsKey
) -> None:
    refused(auth, mint(es_key, "es-1", jti="j-1", aud="https://evil.example"), "'aud'")
    assert jti_store.calls == []


@pytest.mark.parametrize(
    "changes",
    [{"iss": DEFAULT_ISS}, {"tenant": "hospital-b"}, {"exp": int(time.time()) + 600},
     {"aud": BASE}, {"sub": "admin"}],
)
def test_tampered_payload_is_refused(
    auth: Authenticator, es_key: EsKey, changes: dict[str, Any]
) -> None:
    token = mint(es_key, "es-1", tenant="hospital-a", sub="client")
    forged = tamper(token, **changes)
    if forged != token:  # the first case re-encodes the same claims: must still verify
        refused(auth, forged, "signature verification failed")
    else:
        assert auth.verify(bearer(forged), AUDIENCES)


def test_tampered_header_is_refused(auth: Authenticator, rs_key: RsKey) -> None:
    token = mint(rs_key, "rs-1")
    refused(auth, tamper(token, header={"extra": "x"}), "signature verification failed")


def test_tokens_never_reach_the_logs(
    auth: Authenticator, es_key: EsKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [mint(es_key, "es-1", aud="https://evil.example"), mint(es_key, "nope")]
    for token in tokens:
        refused(auth, token)
    for token in tokens:
        assert all(token.split(".")[1] not in record.getMessage() for record in caplog.records)


# -- JWKS by URL: jku, rotation, rate limit, failures ---------------------------------------------
def test_jku_outside_the_allow_list_is_never_fetched(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey, other_key: EsKey,
) -> None:
    auth, clock = url_auth
    with JwksServer(jwks_of(jwk_of(other_key, "es-1"), jwk_of(other_key, "evil"))) as attacker:
        for jku in (attacker.url, jwks_host.url_for("/evil.json"), jwks_host.url + "?x=1"):
            refused(auth, mint(other_key, "es-1", jku=jku), "'jku' is not the issuer's")
            refused(auth, mint(other_key, "evil", jku=jku), "'jku' is not the issuer's")
            clock.advance(60)  # past the re-fetch rate limit: only the allow-listed URL is asked
            # the issuer's own key verifies it: accepted whatever the jku says
            assert auth.verify(bearer(mint(es_key, "es-1", jku=jku)), AUDIENCES)
        assert attacker.hits() == 0
    assert jwks_host.hits() >= 1
    assert jwks_host.hits() == jwks_host.hits(jwks_host.path)  # never /evil.json, never ?x=1


def test_jku_with_inline_keys_verifies_with_the_inline_key(
    auth: Authenticator, es_key: EsKey, other_key: EsKey
) -> None:
    jku = "https://ehr.example.org/jwks"
    assert auth.verify(bearer(mint(es_key, "es-1", jku=jku)), AUDIENCES)["iss"] == DEFAULT_ISS
    refused(auth, mint(other_key, "es-1", jku=jku), "'jku' is not the issuer's")
    refused(auth, mint(other_key, "other", jku=jku), "so it was not fetched")


def test_the_cds_hooks_sandbox_token_shape_is_accepted_with_its_key_inline(
    jti_store: MemoryJtiStore, es_key: EsKey
) -> None:
    """The Sandbox signs ES384 with kid + its public jku, and sends no sub (recorded in the
    clients' shared recordings); its key is configured inline. Our own key stands in for
    the Sandbox's private key, which nobody has."""
    sandbox = "https://sandbox.cds-hooks.org"
    kid = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
    issuer = TrustedIssuer(sandbox, jwks=jwks_of(jwk_of(es_key, kid)))
    auth = Authenticator([issuer], jti_store)
    token = mint(
        es_key, kid, "ES384", iss=sandbox, aud="http://localhost:8080/cds-services",
        jku="https://sandbox.cds-hooks.org/.well-known/jwks.json",
    )
    # the recorded example is of a discovery call: aud is the exact URL called
    claims = auth.verify(bearer(token), ["http://localhost:8080", "http://localhost:8080/cds-services"])
    assert claims["iss"] == sandbox
    assert "sub" not in claims


def test_the_sandboxs_published_key_set_configures_its_issuer_inline(
    tmp_path: Path, jti_store: MemoryJtiStore, es_key: EsKey
) -> None:
    """The operator's configuration as README says: the Sandbox's published key set, inline.
    Nobody has its private key, so a token under its kid signed with another key is refused
    for its signature: the recorded key was found by kid, and nothing was fetched."""
    header, claims = recorded("jwt_header"), recorded("jwt_claims_example")
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [
        {"iss": claims["iss"], "jwks": recorded("sandbox_public_jwks")},
    ]}))
    auth = Authenticator(load_trusted_issuers(str(path)), jti_store)
    token = mint(es_key, header["kid"], "ES384", iss=claims["iss"], aud=DEFAULT_AUD,
                 jku=header["jku"])
    message = refused(auth, token, "signature verification failed")
    assert "not fetched" in message


def test_an_issuer_may_have_inline_keys_and_a_jwks_url(
    jti_store: MemoryJtiStore, jwks_host: JwksServer, es_key: EsKey, new_key: EsKey
) -> None:
    issuer = TrustedIssuer(
        DEFAULT_ISS, jwks=jwks_of(jwk_of(new_key, "inline-1")), jwks_url=jwks_host.url
    )
    auth = Authenticator([issuer], jti_store)
    assert auth.verify(bearer(mint(new_key, "inline-1")), AUDIENCES)
    assert jwks_host.hits() == 0  # an inline key needs no fetch
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)  # from the URL
    assert jwks_host.hits() == 1


def test_unknown_kid_refetches_once_then_is_rate_limited(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey,
) -> None:
    auth, clock = url_auth
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)
    assert jwks_host.hits() == 1
    refused(auth, mint(es_key, "random-0"), "rate-limited")  # just fetched: no re-fetch yet
    assert jwks_host.hits() == 1
    clock.advance(10.1)
    refused(auth, mint(es_key, "random-1"), "after JWKS refresh")
    assert jwks_host.hits() == 2
    for n in range(20):  # a flood of random kids within the window: no further fetch
        refused(auth, mint(es_key, f"random-{n}-x"), "rate-limited")
    clock.advance(9.9)
    refused(auth, mint(es_key, "random-late"), "rate-limited")
    assert jwks_host.hits() == 2
    clock.advance(0.2)
    refused(auth, mint(es_key, "random-later"), "after JWKS refresh")
    assert jwks_host.hits() == 3
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)  # known kid: from the cache
    assert jwks_host.hits() == 3


def test_rotation_new_kid_passes_after_refresh_and_old_kid_is_dropped(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey, new_key: EsKey,
) -> None:
    auth, clock = url_auth
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)
    jwks_host.set_jwks(jwks_of(jwk_of(new_key, "es-2")))
    clock.advance(10.5)
    assert auth.verify(bearer(mint(new_key, "es-2")), AUDIENCES)
    assert jwks_host.hits() == 2
    refused(auth, mint(es_key, "es-1"), "no key with this kid")  # withdrawn key no longer trusted


def test_rotation_within_the_rate_limit_window_waits_for_the_window(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey, new_key: EsKey,
) -> None:
    auth, clock = url_auth
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)  # fetch at t=0
    jwks_host.set_jwks(jwks_of(jwk_of(es_key, "es-1"), jwk_of(new_key, "es-2")))
    clock.advance(3)
    refused(auth, mint(new_key, "es-2"), "rate-limited")
    clock.advance(8)
    assert auth.verify(bearer(mint(new_key, "es-2")), AUDIENCES)
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)
    assert jwks_host.hits() == 2


def test_cached_keys_are_refreshed_after_max_age(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey, new_key: EsKey,
) -> None:
    auth, clock = url_auth
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)
    jwks_host.set_jwks(jwks_of(jwk_of(new_key, "es-2")))  # es-1 withdrawn (e.g. compromised)
    clock.advance(301)
    refused(auth, mint(es_key, "es-1"), "no key with this kid")
    assert jwks_host.hits() == 2


def test_stale_keys_are_kept_while_the_host_is_down(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey,
) -> None:
    auth, clock = url_auth
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)
    jwks_host.set_status(503)
    clock.advance(301)
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)
    assert jwks_host.hits() == 2


def test_concurrent_unknown_kid_triggers_a_single_fetch(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    new_key: EsKey,
) -> None:
    auth, _ = url_auth
    jwks_host.set_jwks(jwks_of(jwk_of(new_key, "es-2")))
    jwks_host.set_delay(0.2)
    tokens = [mint(new_key, "es-2") for _ in range(12)]
    results: list[bool] = []
    lock = threading.Lock()

    def attempt(token: str) -> None:
        try:
            auth.verify(bearer(token), AUDIENCES)
            ok = True
        except AuthenticationError:
            ok = False
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=attempt, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 12
    assert jwks_host.hits() == 1


def test_jwks_host_down_is_an_authentication_error(
    jti_store: MemoryJtiStore, es_key: EsKey
) -> None:
    server = JwksServer(jwks_of(jwk_of(es_key, "es-1")))
    url = server.url
    server.stop()  # never started; the port is closed
    auth = Authenticator([TrustedIssuer(DEFAULT_ISS, jwks_url=url)], jti_store)
    refused(auth, mint(es_key, "es-1"), "JWKS is unavailable (ConnectionError)")
    refused(auth, mint(es_key, "es-1"), "recent fetch failed")  # no hammering a dead host


@pytest.mark.parametrize(
    ("misbehave", "reason"),
    [
        (lambda s: s.set_status(500), "HTTP status 500"),
        (lambda s: s.set_body(b"<html>oops</html>"), "not JSON"),
        (lambda s: s.set_body(b'{"keys": "nope"}'), "not a JWK Set"),
        (lambda s: s.set_body(b"[]"), "not a JWK Set"),
        (lambda s: s.set_body(b" " * (1024 * 1024 + 10)), "larger than"),
        (lambda s: s.set_delay(1.5), "JWKS is unavailable (ReadTimeout)"),
    ],
)
def test_misbehaving_jwks_host_is_an_authentication_error(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey, misbehave: Callable[[JwksServer], None], reason: str,
) -> None:
    auth, clock = url_auth
    misbehave(jwks_host)
    refused(auth, mint(es_key, "es-1"), reason)
    # the host recovers: after the rate-limit window the key is fetched and accepted
    jwks_host.set_status(200)
    jwks_host.set_body(None)
    jwks_host.set_delay(0)
    clock.advance(11)
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)


def test_redirects_are_not_followed(
    url_auth: tuple[Authenticator, FakeMonotonic], jwks_host: JwksServer,
    es_key: EsKey,
) -> None:
    auth, _ = url_auth
    jwks_host.set_redirect(jwks_host.url_for("/elsewhere.json"))
    refused(auth, mint(es_key, "es-1"), "HTTP status 302")
    assert jwks_host.hits("/elsewhere.json") == 0


def test_unusable_keys_in_a_fetched_jwks_are_skipped(
    jti_store: MemoryJtiStore, es_key: EsKey, rs_key: RsKey
) -> None:
    weak = make_rs384_key(1024)
    jwks = {"keys": [
        jwk_of(es_key, "enc", use="enc"),
        {**jwk_of(es_key, "ops"), "key_ops": ["encrypt"]},
        jwk_of(weak, "weak"),
        {"kty": "EC", "kid": "broken", "crv": "P-384", "x": "AAAA", "y": "AAAA"},
        {k: v for k, v in jwk_of(es_key, "no-kid").items() if k != "kid"},
        jwk_of(rs_key, "rs-1"),
        "not-a-key",
    ]}
    with JwksServer(jwks) as server:
        auth = Authenticator([TrustedIssuer(DEFAULT_ISS, jwks_url=server.url)], jti_store)
        assert auth.verify(bearer(mint(rs_key, "rs-1")), AUDIENCES)
        refused(auth, mint(es_key, "enc"), "no key with this kid")
        refused(auth, mint(es_key, "ops"), "no key with this kid")
        refused(auth, mint(weak, "weak"), "no key with this kid")


# -- configuration --------------------------------------------------------------------------------
def test_load_trusted_issuers(tmp_path: Path, es_key: EsKey) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [
        {"iss": "https://sandbox.cds-hooks.org",
         "jwks_url": "https://sandbox.cds-hooks.org/.well-known/jwks.json"},
        {"iss": DEFAULT_ISS, "jwks": jwks_of(jwk_of(es_key, "es-1"))},
        {"iss": "dev", "jwks_url": "http://localhost:8081/jwks"},
        {"iss": "dev6", "jwks_url": "http://[::1]:8081/jwks"},
    ]}))
    issuers = load_trusted_issuers(str(path))
    assert [i.iss for i in issuers] == ["https://sandbox.cds-hooks.org", DEFAULT_ISS, "dev", "dev6"]
    assert issuers[1].jwks is not None
    assert issuers[0].jwks is None
    assert all(issuer.fhir_servers is None for issuer in issuers)


def test_fhir_servers_of_an_issuer_are_read_in_one_spelling(tmp_path: Path, es_key: EsKey) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": [
        {"iss": DEFAULT_ISS, "jwks": jwks_of(jwk_of(es_key, "es-1")),
         "jwks_url": "https://ehr.example.org/jwks",
         "fhir_servers": ["HTTPS://EHR.example.org:443/fhir/R4/", "http://127.0.0.1:8103/fhir"]},
    ]}))
    (issuer,) = load_trusted_issuers(str(path))
    assert issuer.fhir_servers == {"https://ehr.example.org/fhir/R4", "http://127.0.0.1:8103/fhir"}
    assert issuer.jwks_url == "https://ehr.example.org/jwks"
    built = TrustedIssuer("x", jwks_url="https://x/j", fhir_servers=frozenset({"https://X/f/"}))
    assert built.fhir_servers == {"https://x/f"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[]", '{"issuers": [...]}'),
        ('{"issuers": []}', "lists no issuers"),
        ('{"issuers": [], "extra": 1}', "unknown top-level"),
        ('{"issuers": ["x"]}', "issuers[0]: must be an object"),
        ('{"issuers": [{"iss": "a"}]}', "needs 'jwks'"),
        ('{"issuers": [{"iss": "a", "jwks_url": "https://a/j", "fhir_servers": []}]}',
         "non-empty list"),
        ('{"issuers": [{"iss": "a", "jwks_url": "https://a/j", "fhir_servers": "https://f"}]}',
         "non-empty list"),
        ('{"issuers": [{"iss": "a", "jwks_url": "https://a/j", "fhir_servers": [5]}]}',
         "as strings"),
        ('{"issuers": [{"iss": "a", "jwks_url": "https://a/j", "fhir_servers": ["ftp://f/x"]}]}',
         "not a FHIR base URL"),
        ('{"issuers": [{"iss": "a", "jwks_url": "https://a/j", "fhir_servers": ["https://f/?q"]}]}',
         "not a FHIR base URL"),
        ('{"issuers": [{"iss": "a", "jwks_uri": "https://a/j"}]}', "unknown field(s) jwks_uri"),
        ('{"issuers": [{"iss": "a", "jwks_url": "http://a.example/j"}]}', "must be an https URL"),
        ('{"issuers": [{"iss": "a", "jwks_url": "ftp://127.0.0.1/j"}]}', "must be an https URL"),
        ('{"issuers": [{"iss": "a", "jwks_url": "https:///nohost"}]}', "must be an https URL"),
        ('{"issuers": [{"iss": "", "jwks_url": "https://a/j"}]}', "non-empty string 'iss'"),
        ('{"issuers": [{"iss": 5, "jwks_url": "https://a/j"}]}', "'iss' must be a string"),
        ('{"issuers": [{"iss": "a", "jwks": {"kid": "x"}}]}', "JWK Set"),
        ('{"issuers": [{"iss": "a", "jwks": {"keys": [{"kty": "oct", "kid": "h", "k": "c2Vj"}]}}]}',
         "'oct' is not an asymmetric"),
        ('{"issuers": [{"iss": "a", "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "kid": "b",'
         ' "x": "AA", "y": "AA"}]}}]}', "key 0: not a valid EC key"),
        ('{"issuers": [{"iss": "a", "jwks_url": "https://a/j"}, {"iss": "a", "jwks_url":'
         ' "https://b/j"}]}', "listed twice"),
    ],
)
def test_bad_trusted_issuers_file_is_a_clear_value_error(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_trusted_issuers(str(path))
    assert reason in str(info.value)
    assert str(path) in str(info.value)


def test_missing_trusted_issuers_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read it"):
        load_trusted_issuers(str(tmp_path / "absent.json"))


@pytest.mark.parametrize(
    "algorithms", [("HS256",), ("ES384", "HS384"), ("none",), ("ES384", "None"), ()]
)
def test_symmetric_or_none_algorithms_cannot_be_configured(
    inline_issuer: TrustedIssuer, jti_store: MemoryJtiStore, algorithms: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="never accepted"):
        Authenticator([inline_issuer], jti_store, algorithms=algorithms)


def test_constructor_refuses_duplicates_and_bad_urls(
    inline_issuer: TrustedIssuer, jti_store: MemoryJtiStore
) -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Authenticator([inline_issuer, inline_issuer], jti_store)
    with pytest.raises(ValueError, match="https"):
        TrustedIssuer("x", jwks_url="http://169.254.169.254/latest")


def test_inline_keys_not_for_signing_are_skipped(
    jti_store: MemoryJtiStore, es_key: EsKey, other_key: EsKey
) -> None:
    issuer = TrustedIssuer(
        DEFAULT_ISS, jwks=jwks_of(jwk_of(other_key, "enc", use="enc"), jwk_of(es_key, "es-1"))
    )
    auth = Authenticator([issuer], jti_store)
    assert auth.verify(bearer(mint(es_key, "es-1")), AUDIENCES)
    refused(auth, mint(other_key, "enc"), "no key with this kid")


def test_private_members_of_a_jwk_are_ignored(jti_store: MemoryJtiStore, es_key: EsKey) -> None:
    issuer = TrustedIssuer(DEFAULT_ISS, jwks=jwks_of(jwk_of(es_key, "es-1", include_private=True)))
    assert Authenticator([issuer], jti_store).verify(bearer(mint(es_key, "es-1")), AUDIENCES)


def test_long_min_refresh_is_accepted(
    inline_issuer: TrustedIssuer, jti_store: MemoryJtiStore
) -> None:
    # CDS_JWKS_MIN_REFRESH_SECONDS may be up to 3600, longer than the default jwks_max_age
    Authenticator([inline_issuer], jti_store, jwks_min_refresh_seconds=3600)
