"""A real ES384 key for the run, the trusted-issuers file that trusts it, and token pools.

The service runs as in production (``CDS_AUTH=required``) and refuses a replayed ``jti``, so
every request it gets carries its own freshly signed token. Signing costs ~0.3 ms of CPU, so
the pools are minted before a timed phase (never inside it), in parallel processes, and
written one token per line for the load generator to rotate through.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER = "https://bench-ehr.example.org"
KEY_ID = "bench-es384-1"
ALGORITHM = "ES384"
# The service refuses tokens with exp - iat above an hour; a phase lasts far less.
MAX_LIFETIME_SECONDS = 3000
_CHUNK = 500


@dataclass(frozen=True)
class SigningKey:
    """The run's private key (PEM, so it can go to worker processes) and its public JWKS."""

    private_pem: bytes
    kid: str = KEY_ID
    iss: str = ISSUER

    @classmethod
    def generate(cls) -> SigningKey:
        key = ec.generate_private_key(ec.SECP384R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(pem)

    def jwks(self) -> dict[str, object]:
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": ALGORITHM})
        return {"keys": [jwk]}

    def write_trusted_issuers(self, path: Path) -> Path:
        """The CDS_TRUSTED_ISSUERS file: this issuer with its key inline."""
        path.write_text(json.dumps({"issuers": [{"iss": self.iss, "jwks": self.jwks()}]}))
        return path

    def mint(self, audience: str, lifetime_seconds: float) -> str:
        return _mint_many(self.private_pem, self.kid, self.iss, audience, lifetime_seconds, 1)[0]

    def mint_pool(
        self, audience: str, count: int, lifetime_seconds: float, processes: int | None = None
    ) -> list[str]:
        """``count`` tokens, each with its own ``jti``, signed in parallel processes."""
        lifetime = min(max(lifetime_seconds, 60.0), MAX_LIFETIME_SECONDS)
        chunks = [min(_CHUNK, count - start) for start in range(0, count, _CHUNK)]
        workers = max(1, min(processes or (os.cpu_count() or 1), len(chunks)))
        if workers == 1:
            return _mint_many(self.private_pem, self.kid, self.iss, audience, lifetime, count)
        tokens: list[str] = []
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(
                    _mint_many, self.private_pem, self.kid, self.iss, audience, lifetime, size
                )
                for size in chunks
            ]
            for future in futures:
                tokens.extend(future.result(timeout=300))
        return tokens


def write_pool(path: Path, tokens: list[str]) -> Path:
    path.write_text("\n".join(tokens) + "\n")
    return path


def _mint_many(
    private_pem: bytes, kid: str, iss: str, audience: str, lifetime_seconds: float, count: int
) -> list[str]:
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    headers = {"kid": kid, "typ": "JWT"}
    issued = int(time.time())
    expires = issued + int(lifetime_seconds)
    return [
        jwt.encode(
            {
                "iss": iss,
                "sub": iss,
                "aud": audience,
                "iat": issued,
                "exp": expires,
                "jti": str(uuid.uuid4()),
            },
            key,
            algorithm=ALGORITHM,
            headers=headers,
        )
        for _ in range(count)
    ]
