"""CDS Hooks JWTs for calls to a deployed service that requires authentication.

A CDS client signs a fresh token for every call (CDS Hooks 2.0): ``iss`` the client, ``aud``
the exact URL called, a five-minute lifetime and a unique ``jti`` (the service refuses a
replayed one). ES384 for a P-384 EC key, RS384 for an RSA key: the algorithms the service
accepts by default.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

LIFETIME_SECONDS = 300


def load_signer(key_file: Path | str, issuer: str, kid: str) -> Callable[[str], str]:
    """A function from the URL called to a signed token; ValueError naming what is wrong."""
    try:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(
            f"--jwt-key {key_file}: not a readable PEM private key ({error})"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        algorithm = "ES384"
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "RS384"
    else:
        raise ValueError(
            f"--jwt-key {key_file}: needs a P-384 EC key (ES384) or an RSA key (RS384)"
        )

    def sign(url: str) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": url,
            "iat": now,
            "exp": now + LIFETIME_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"})

    return sign
