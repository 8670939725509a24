"""The second baseline: the least any conformant CDS service does per call.

The bare app (``benchmarks.bare_app``) plus what CDS Hooks asks of every service before it may
look at the data: verify the EHR's JWT (PyJWT: ES384 signature with the issuer's key, ``iss``,
``aud`` = this endpoint's URL, ``exp``, ``iat`` and ``jti`` present) and record its ``jti``
once, refusing a token seen before (SQLite, WAL, ``synchronous=NORMAL``: what the service's
own replay check uses). Then it parses the body and answers ``{"cards": []}``.

``python -m benchmarks.minimal_app --host H --port P`` serves it through
``cds_service.serve.run_server`` with ``app_uri`` set to this module's ``create_app()``: the
gunicorn settings of ``ixazomib-cds serve``. It reads, from the environment (when it starts,
not at import: a variable missing or unusable is a usage error, exit 2):

* ``BENCH_TRUSTED_ISSUERS``: the trusted-issuers file the service is given (inline JWKS);
* ``BENCH_BASE_URL``: its own URL (the expected ``aud`` is this plus the request path);
* ``BENCH_JTI_DATABASE``: the SQLite file for the token ids.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
from flask import Flask, Response, jsonify, request

from benchmarks.bare_app import serve_baseline

APP_URI = "benchmarks.minimal_app:create_app()"  # a factory: see create_app
ENVIRONMENT = ("BENCH_TRUSTED_ISSUERS", "BENCH_BASE_URL", "BENCH_JTI_DATABASE")
ALGORITHMS = ["ES384"]


def _keys_by_issuer(path: str) -> dict[str, dict[str, jwt.PyJWK]]:
    issuers = json.loads(Path(path).read_text())["issuers"]
    return {
        issuer["iss"]: {key["kid"]: jwt.PyJWK(key) for key in issuer["jwks"]["keys"]}
        for issuer in issuers
    }


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class TokenIds:
    """Each (iss, jti) recorded once; one SQLite connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        with contextlib.closing(_connect(path)) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS jti_claims (issuer TEXT NOT NULL, jti TEXT NOT NULL,"
                " expires_at INTEGER NOT NULL, PRIMARY KEY (issuer, jti))"
            )
        # The connection is per thread and made after gunicorn forks (the app is preloaded).

    def claim(self, issuer: str, jti: str, expires_at: int) -> bool:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
        try:
            conn.execute(
                "INSERT INTO jti_claims (issuer, jti, expires_at) VALUES (?, ?, ?)",
                (issuer, jti, expires_at),
            )
        except sqlite3.IntegrityError:
            return False
        return True


@dataclass(frozen=True)
class Settings:
    """What the app is given through the environment (the variables of ``ENVIRONMENT``)."""

    keys_by_issuer: dict[str, dict[str, jwt.PyJWK]]
    base_url: str
    jti_database: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Raises ValueError naming each variable that is missing or cannot be used."""
        missing = [name for name in ENVIRONMENT if not environ.get(name)]
        if missing:
            raise ValueError(f"environment variable(s) not set: {', '.join(missing)} (see --help)")
        issuers = environ["BENCH_TRUSTED_ISSUERS"]
        try:
            keys = _keys_by_issuer(issuers)
        except (OSError, ValueError, LookupError, TypeError, jwt.PyJWTError) as error:
            raise ValueError(
                f"BENCH_TRUSTED_ISSUERS: no trusted issuers in {issuers!r}: {error!r}"
            ) from error
        return cls(keys, environ["BENCH_BASE_URL"].rstrip("/"), environ["BENCH_JTI_DATABASE"])


def _unauthorized() -> Response:
    response = jsonify({"error": "unauthorized"})
    response.status_code = 401
    return response


def create_app(settings: Settings | None = None) -> Flask:
    """The app (gunicorn calls this, ``APP_URI``); settings from the environment by default.

    Read here, not at import, so that ``--help`` and a missing variable need no set-up."""
    config = Settings.from_environment() if settings is None else settings
    token_ids = TokenIds(config.jti_database)
    app = Flask(__name__)

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _unauthorized()
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            issuer = str(unverified.get("iss"))
            kid = str(jwt.get_unverified_header(token).get("kid"))
            key = config.keys_by_issuer.get(issuer, {}).get(kid)
            if key is None:
                return _unauthorized()
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=f"{config.base_url}{request.path}",
                issuer=issuer,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.PyJWTError:
            return _unauthorized()
        if not token_ids.claim(claims["iss"], str(claims["jti"]), int(claims["exp"])):
            return _unauthorized()
        json.loads(request.get_data(cache=False))
        return jsonify({"cards": []})

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app


def main(argv: Sequence[str] | None = None) -> int:
    return serve_baseline(
        "benchmarks.minimal_app", APP_URI, __doc__, 8082, argv, Settings.from_environment
    )


if __name__ == "__main__":
    sys.exit(main())
