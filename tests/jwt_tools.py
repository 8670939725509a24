"""Mint real signed CDS Hooks JWTs with real keys (no mocks), for any test that needs a token.

    key = make_es384_key()
    issuer = TrustedIssuer(DEFAULT_ISS, jwks=jwks_of(jwk_of(key, "k1")))
    token = mint(key, "k1", aud="https://cds.example.org/cds-services/ixazomib-order-sign")
    headers = {"Authorization": f"Bearer {token}"}

``mint`` signs whatever it is told to, including broken tokens (missing claims, odd headers),
so that refusal paths can be tested; ``mint_unsigned``, ``mint_hmac_with_public_key`` and
``tamper`` build the classic attacks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

DEFAULT_ISS = "https://ehr.example.org"
DEFAULT_AUD = "https://cds.example.org/cds-services/ixazomib-order-sign"
DEFAULT_LIFETIME_SECONDS = 300

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def make_es384_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def make_es256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_rs384_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def default_alg(key: PrivateKey) -> str:
    """ES384/ES256/ES512 by curve for EC keys, RS384 for RSA, EdDSA for Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS384"
    return "EdDSA"


def jwk_of(
    key: PrivateKey, kid: str, *, alg: str | None = None, use: str | None = "sig",
    include_private: bool = False,
) -> dict[str, Any]:
    """The key's JWK (public half unless ``include_private``) with ``kid``, ``use`` and ``alg``.

    ``alg`` defaults to :func:`default_alg`; pass ``alg=""`` to leave it out.
    """
    algorithm = get_default_algorithms()[default_alg(key)]
    material = key if include_private else key.public_key()
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(material))
    jwk["kid"] = kid
    if use is not None:
        jwk["use"] = use
    chosen = default_alg(key) if alg is None else alg
    if chosen:
        jwk["alg"] = chosen
    return jwk


def jwks_of(*jwks: Mapping[str, Any]) -> dict[str, Any]:
    """A JWK Set of the given JWKs."""
    return {"keys": [dict(jwk) for jwk in jwks]}


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def default_claims(
    *, iss: str = DEFAULT_ISS, aud: str | list[str] = DEFAULT_AUD, now: float | None = None,
    lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS,
) -> dict[str, Any]:
    """iss, aud, iat = now, exp = now + lifetime, a fresh uuid jti."""
    issued = int(time.time() if now is None else now)
    return {
        "iss": iss,
        "aud": aud,
        "iat": issued,
        "exp": issued + int(lifetime_seconds),
        "jti": str(uuid.uuid4()),
    }


def mint(
    key: PrivateKey,
    kid: str | None,
    alg: str | None = None,
    *,
    iss: str = DEFAULT_ISS,
    aud: str | list[str] = DEFAULT_AUD,
    now: float | None = None,
    lifetime_seconds: float = DEFAULT_LIFETIME_SECONDS,
    jku: str | None = None,
    typ: str | None = "JWT",
    headers: Mapping[str, Any] | None = None,
    omit: Iterable[str] = (),
    **claims: Any,
) -> str:
    """A real signed JWT (JWS compact form) as a CDS client would send it.

    Defaults: ``alg`` from the key, ``typ: JWT``, iat now, exp +5 min, uuid jti. ``claims``
    override or add claims (``tenant="..."``, ``exp=...``); ``omit`` removes claims or header
    fields (``omit=("jti",)``, ``omit=("typ",)``); ``kid=None`` leaves the kid out.
    """
    alg = alg or default_alg(key)
    header: dict[str, Any] = {"alg": alg, "typ": typ, "kid": kid}
    if jku is not None:
        header["jku"] = jku
    header.update(headers or {})
    payload = default_claims(iss=iss, aud=aud, now=now, lifetime_seconds=lifetime_seconds)
    payload.update(claims)
    omitted = set(omit)
    header = {k: v for k, v in header.items() if v is not None and k not in omitted}
    payload = {k: v for k, v in payload.items() if k not in omitted}
    signing_input = _signing_input(header, payload)
    signature = get_default_algorithms()[alg].sign(signing_input, key)
    return f"{signing_input.decode()}.{_b64(signature)}"


def mint_unsigned(kid: str = "k1", **claims: Any) -> str:
    """``alg: none`` with an empty signature (the 'unsecured JWT')."""
    payload = default_claims()
    payload.update(claims)
    signing_input = _signing_input({"alg": "none", "typ": "JWT", "kid": kid}, payload)
    return f"{signing_input.decode()}."


def mint_hmac_with_public_key(
    key: PrivateKey, kid: str, alg: str = "HS384", *, secret: bytes | None = None,
    **claims: Any,
) -> str:
    """The algorithm-confusion attack: HMAC-signed with the issuer's *public* key as the secret.

    ``secret`` defaults to the public key's PEM (what a naive verifier would feed to HMAC).
    """
    payload = default_claims()
    payload.update(claims)
    signing_input = _signing_input({"alg": alg, "typ": "JWT", "kid": kid}, payload)
    secret = public_pem(key) if secret is None else secret
    signature = hmac.new(secret, signing_input, _HASHES[alg]).digest()
    return f"{signing_input.decode()}.{_b64(signature)}"


def tamper(token: str, *, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
    """The same signature over a changed payload (and/or header): must never verify."""
    head, body, signature = token.split(".")
    new_head = {**_json_of(head), **(header or {})}
    new_body = {**_json_of(body), **claims}
    return f"{_signing_input(new_head, new_body).decode()}.{signature}"


def unverified_claims(token: str) -> dict[str, Any]:
    return _json_of(token.split(".")[1])


class MemoryJtiStore:
    """A real, thread-safe in-memory ``claim_jti(iss, jti, expires_at)`` for tests.

    Returns False when (iss, jti) was already claimed and has not expired yet.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], datetime] = {}
        self.calls: list[tuple[str, str, datetime]] = []

    def __call__(self, iss: str, jti: str, expires_at: datetime) -> bool:
        with self._lock:
            self.calls.append((iss, jti, expires_at))
            now = datetime.now(UTC)
            for seen_key in [k for k, until in self._seen.items() if until < now]:
                del self._seen[seen_key]
            if (iss, jti) in self._seen:
                return False
            self._seen[(iss, jti)] = expires_at
            return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_input(header: Mapping[str, Any], payload: Mapping[str, Any]) -> bytes:
    def encode(part: Mapping[str, Any]) -> str:
        return _b64(json.dumps(part, separators=(",", ":")).encode())

    return f"{encode(header)}.{encode(payload)}".encode()


def _json_of(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded
