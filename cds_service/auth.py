"""CDS Hooks 2.0 authentication: verify the Bearer JWT a CDS client signs for every call.

What is checked (CDS Hooks 2.0, "Trusting CDS Clients"):

* ``Authorization: Bearer <JWS compact token>``;
* protected header: ``alg`` among the configured *asymmetric* algorithms (ES384 and RS384 by
  default; ``none`` and HMAC can never be configured), ``kid`` (required, a string), ``typ``
  ``JWT``, no ``crit`` extensions;
* the issuer (``iss``) is on the allow-list; its keys come only from keys configured inline
  and/or its allow-listed JWKS URL. A header's ``jku`` is never fetched: it only says where the
  client publishes its keys, and the service uses the keys the operator configured for the
  issuer whatever it says (the CDS Hooks Sandbox names its public URL while the operator
  configures its key inline). The key is chosen by ``kid`` *and* bound to the header's ``alg``
  (a key is only ever used with an algorithm matching its type and curve), so the classic
  "HS256 signed with the public key" confusion cannot happen;
* claims ``iss``, ``aud``, ``exp``, ``iat``, ``jti`` are required; ``aud`` must contain one of the
  audiences the caller accepts (compared exactly, modulo one trailing slash); ``exp``, ``iat``
  and ``nbf`` NumericDates between 1970 and 9999 (a JSON number of any size, NaN or a boolean
  is refused, never a crash); ``exp`` not past,
  ``iat`` and ``nbf`` not in the future (each with ``leeway_seconds``), ``exp - iat`` at most
  ``max_token_lifetime_seconds``; ``jti`` is claimed once per issuer through ``claim_jti``.

JWKS fetched from a URL are cached per issuer. An unknown ``kid`` triggers a re-fetch (key
rotation), at most once per ``jwks_min_refresh_seconds`` per issuer, so tokens with random kids
cannot flood the issuer's JWKS host. Cached keys are also re-fetched after
``jwks_max_age_seconds`` so that keys the issuer withdraws stop being trusted; if that periodic
re-fetch fails the cached keys stay in use (the failure is logged). A failed fetch for a key the
service does not have is an :class:`AuthenticationError` (401), never a crash.

Tokens and claim values other than ``iss`` and ``kid`` never appear in exception messages or logs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jwt
import requests

from cds_service.errors import ServiceUnavailable
from cds_service.protocol.fhir_policy import fhir_base, is_loopback_host

log = logging.getLogger(__name__)

# Asymmetric JWS algorithms (RFC 7518, RFC 8037) and the key type / curves each may be used with.
ASYMMETRIC_ALGORITHMS: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
DEFAULT_ALGORITHMS = ("ES384", "RS384")

# The public members of each key type: private members ("d", "p", ...) are never loaded.
_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
    "OKP": ("kty", "crv", "x"),
}
_MIN_RSA_BITS = 2048
_MAX_TOKEN_CHARS = 16 * 1024
_MAX_JWKS_BYTES = 1024 * 1024
_MAX_KID_CHARS = 256
_MAX_JTI_CHARS = 255
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ISSUER_FIELDS = frozenset({"iss", "jwks_url", "jwks", "fhir_servers"})
# 9999-12-31T23:59:59Z: a NumericDate beyond it is no real token's (and would overflow floats
# and datetimes); before 1970 neither.
_MAX_NUMERIC_DATE = 253402300799
# Decodes and verifies compact JWS; stateless, shared by all threads.
_JWS = jwt.PyJWS()


class AuthenticationError(Exception):
    """Any reason to answer a bare 401. ``str(e)`` is a reason safe to log (never the token)."""


@dataclass(frozen=True)
class TrustedIssuer:
    """A CDS client the service trusts, with its keys: inline, by URL, or both.

    ``jwks_url`` must be https; plain http is accepted only for loopback hosts (development,
    tests). ``jwks`` is a JWK Set (``{"keys": [...]}``) configured inline; a token's key is
    looked for there first. ``fhir_servers``, when given, are the only FHIR base URLs this
    client's requests may name as ``fhirServer`` (see ``protocol/fhir_policy.py``).
    """

    iss: str
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    fhir_servers: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.iss, str) or not self.iss.strip():
            raise ValueError("a trusted issuer needs a non-empty string 'iss'")
        if self.jwks_url is None and self.jwks is None:
            raise ValueError(
                f"trusted issuer {self.iss!r} needs 'jwks' (its keys inline), 'jwks_url', or both"
            )
        if self.jwks_url is not None:
            _check_jwks_url(self.iss, self.jwks_url)
        if self.fhir_servers is not None:  # kept in one spelling, as requests are compared
            bases = frozenset(fhir_base(url) for url in self.fhir_servers)
            object.__setattr__(self, "fhir_servers", bases)
        if self.jwks is not None and not (
            isinstance(self.jwks, dict) and isinstance(self.jwks.get("keys"), list)
        ):
            raise ValueError(
                f"trusted issuer {self.iss!r}: 'jwks' must be a JWK Set {{\"keys\": [...]}}"
            )


def load_trusted_issuers(path: str) -> list[TrustedIssuer]:
    """Read the trusted-issuers file; a bad file raises ValueError saying what is wrong.

    Format: ``{"issuers": [{"iss": "...", "jwks_url": "https://..."},
    {"iss": "...", "jwks": {"keys": [...]}, "fhir_servers": ["https://ehr.example/fhir"]}]}``.
    """
    where = f"trusted issuers file {path!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{where}: cannot read it ({error})") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("issuers"), list):
        raise ValueError(f'{where}: must be a JSON object {{"issuers": [...]}}')
    if set(document) != {"issuers"}:
        unknown = ", ".join(sorted(set(document) - {"issuers"}))
        raise ValueError(
            f"{where}: unknown top-level field(s) {unknown}; only 'issuers' is allowed"
        )
    entries: list[Any] = document["issuers"]
    if not entries:
        raise ValueError(f"{where}: lists no issuers, so no CDS client could ever authenticate")
    issuers: list[TrustedIssuer] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        at = f"{where}, issuers[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{at}: must be an object with 'iss' and 'jwks' and/or 'jwks_url'")
        unknown_fields = set(entry) - _ISSUER_FIELDS
        if unknown_fields:
            raise ValueError(
                f"{at}: unknown field(s) {', '.join(sorted(unknown_fields))}; "
                "allowed: iss, jwks_url, jwks, fhir_servers"
            )
        iss, jwks_url, jwks = entry.get("iss"), entry.get("jwks_url"), entry.get("jwks")
        if not isinstance(iss, str):
            raise ValueError(f"{at}: 'iss' must be a string")
        if jwks_url is not None and not isinstance(jwks_url, str):
            raise ValueError(f"{at}: 'jwks_url' must be a string")
        try:
            fhir_servers = _fhir_servers(entry.get("fhir_servers"))
            issuer = TrustedIssuer(iss=iss, jwks_url=jwks_url, jwks=jwks, fhir_servers=fhir_servers)
            if issuer.jwks is not None:
                # Inline keys must be usable by some algorithm that could be configured.
                _parse_jwks(issuer.jwks, tuple(ASYMMETRIC_ALGORITHMS), strict=True)
        except ValueError as error:
            raise ValueError(f"{at}: {error}") from None
        if issuer.iss in seen:
            raise ValueError(f"{at}: issuer {issuer.iss!r} is listed twice")
        seen.add(issuer.iss)
        issuers.append(issuer)
    return issuers


class Authenticator:
    """Verifies CDS Hooks Bearer JWTs. One instance serves all threads of a worker."""

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        claim_jti: Callable[[str, str, datetime], bool],
        *,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway_seconds: int = 30,
        max_token_lifetime_seconds: int = 3600,
        jwks_min_refresh_seconds: float = 10.0,
        http: requests.Session | None = None,
        fetch_timeout_seconds: float = 3.0,
        jwks_max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``claim_jti(iss, jti, expires_at)`` records the token id and returns False if that
        (iss, jti) was already claimed; ``expires_at`` is when the record may be forgotten
        (``exp`` plus the leeway). ``clock`` (epoch seconds) and ``monotonic`` exist for tests."""
        algorithms = tuple(algorithms)
        refused = [alg for alg in algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if not algorithms or refused:
            raise ValueError(
                "JWT algorithms must be asymmetric JWS algorithms "
                f"({', '.join(ASYMMETRIC_ALGORITHMS)}); refused: {', '.join(refused) or '(none)'}"
                " - 'none' and HMAC (HS*) are never accepted"
            )
        if leeway_seconds < 0 or leeway_seconds > 300:
            raise ValueError("leeway_seconds must be between 0 and 300")
        if max_token_lifetime_seconds <= 0:
            raise ValueError("max_token_lifetime_seconds must be positive")
        if jwks_min_refresh_seconds < 0:
            raise ValueError("jwks_min_refresh_seconds must not be negative")
        if fetch_timeout_seconds <= 0:
            raise ValueError("fetch_timeout_seconds must be positive")
        if jwks_max_age_seconds <= 0:
            raise ValueError("jwks_max_age_seconds must be positive")
        self._algorithms = algorithms
        self._claim_jti = claim_jti
        self._leeway = leeway_seconds
        self._max_lifetime = max_token_lifetime_seconds
        self._min_refresh = jwks_min_refresh_seconds
        self._max_age = max(jwks_max_age_seconds, jwks_min_refresh_seconds)
        self._timeout = fetch_timeout_seconds
        self._http = http if http is not None else requests.Session()
        self._clock = clock
        self._monotonic = monotonic
        self._issuers: dict[str, _IssuerKeys] = {}
        for issuer in issuers:
            if issuer.iss in self._issuers:
                raise ValueError(f"trusted issuer {issuer.iss!r} is listed twice")
            self._issuers[issuer.iss] = _IssuerKeys(issuer, self)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self._algorithms

    def fhir_servers(self, iss: str) -> frozenset[str] | None:
        """The FHIR base URLs the issuer's requests may name (normalised), or None: any."""
        keys = self._issuers.get(iss)
        return keys.issuer.fhir_servers if keys is not None else None

    def verify(self, authorization_header: str | None, audiences: Sequence[str]) -> dict[str, Any]:
        """Return the verified claims of the Bearer token, or raise AuthenticationError."""
        if isinstance(audiences, str) or not audiences:
            raise ValueError("verify() needs a non-empty list of acceptable audiences")
        token = _bearer_token(authorization_header)
        header, unverified = _unverified_parts(token)

        kid = header.get("kid")
        iss = unverified.get("iss")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            shown = alg if isinstance(alg, str) and len(alg) <= 10 and alg.isalnum() else "?"
            raise _refused(f"algorithm {shown!r} is not accepted", iss, kid)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ("jwt", "application/jwt"):
            raise _refused("header 'typ' must be 'JWT'", iss, kid)
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_CHARS:
            raise _refused("header 'kid' is missing or not a short string", iss, kid)
        if "crit" in header or "b64" in header:
            raise _refused("header carries critical extensions ('crit'/'b64')", iss, kid)
        if not isinstance(iss, str) or not iss:
            raise _refused("claim 'iss' is missing or not a string", None, kid)

        keys = self._issuers.get(iss)
        if keys is None:
            raise _refused("issuer is not trusted", iss, kid)

        try:
            key = keys.key_for(kid, alg)
        except AuthenticationError as error:
            raise _noting_jku(error, header, keys.issuer) from None
        try:
            # The PyJWK is bound to the header's alg; PyJWT refuses any other, and short keys.
            _JWS.decode_complete(
                token, key=key, algorithms=[alg], options={"enforce_minimum_key_length": True}
            )
        except Exception:  # signature, key or encoding problems all mean "not authentic"
            refusal = _refused("signature verification failed", iss, kid)
            raise _noting_jku(refusal, header, keys.issuer) from None
        # PyJWT verified the signature over this token's payload: the very bytes the claims
        # were read from above, so those are the verified claims.
        claims = unverified

        expires_at = self._check_claims(claims, audiences, iss, kid)
        jti: str = claims["jti"]
        try:
            fresh = self._claim_jti(iss, jti, expires_at)
        except ServiceUnavailable:
            raise  # the replay store is down: a 503 for the caller to retry, not a 401
        except Exception as error:  # the store's message could quote the jti: log only the type
            log.error(
                "JWT replay check (claim_jti) failed for iss=%r with %s; refusing the token",
                _shown(iss),
                type(error).__name__,
            )
            raise _refused("the replay check (jti store) is unavailable", iss, kid) from None
        if not fresh:
            raise _refused("token replayed: its 'jti' was already used", iss, kid)
        return claims

    def _check_claims(
        self, claims: dict[str, Any], audiences: Sequence[str], iss: str, kid: str
    ) -> datetime:
        """Check the registered claims; returns when the token's jti may be forgotten."""
        for name in ("aud", "exp", "iat", "jti"):
            if name not in claims:
                raise _refused(f"required claim {name!r} is missing", iss, kid)

        aud = claims["aud"]
        aud_values = [aud] if isinstance(aud, str) else aud
        if (
            not isinstance(aud_values, list)
            or not aud_values
            or not all(isinstance(value, str) for value in aud_values)
        ):
            raise _refused("claim 'aud' must be a string or a list of strings", iss, kid)
        accepted = {_without_trailing_slash(audience) for audience in audiences}
        if not any(_without_trailing_slash(value) in accepted for value in aud_values):
            raise _refused("claim 'aud' does not name this service", iss, kid)

        exp, iat = _numeric_date(claims, "exp", iss, kid), _numeric_date(claims, "iat", iss, kid)
        now = self._clock()
        if exp <= iat:
            raise _refused("claim 'exp' is not after 'iat'", iss, kid)
        if now > exp + self._leeway:
            raise _refused("token expired", iss, kid)
        if iat > now + self._leeway:
            raise _refused("claim 'iat' is in the future", iss, kid)
        if exp - iat > self._max_lifetime:
            raise _refused(
                f"token lifetime exceeds {self._max_lifetime} seconds (exp - iat)", iss, kid
            )
        if "nbf" in claims and _numeric_date(claims, "nbf", iss, kid) > now + self._leeway:
            raise _refused("token not yet valid (nbf)", iss, kid)

        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_CHARS:
            raise _refused(f"claim 'jti' must be a string of 1-{_MAX_JTI_CHARS} chars", iss, kid)
        for name in ("sub", "tenant"):
            if name in claims and not isinstance(claims[name], str):
                raise _refused(f"claim {name!r} must be a string", iss, kid)
        return datetime.fromtimestamp(exp + self._leeway, tz=UTC)

    def _fetch_jwks(self, url: str) -> Any:
        """GET the issuer's JWKS; raises _JwksUnavailable. Redirects are never followed."""
        deadline = self._monotonic() + self._timeout
        try:
            with self._http.get(
                url,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
                headers={"Accept": "application/jwk-set+json, application/json"},
            ) as response:
                if response.status_code != 200:
                    raise _JwksUnavailable(f"HTTP status {response.status_code}")
                body = bytearray()
                for chunk in response.iter_content(chunk_size=65536):
                    body += chunk
                    if len(body) > _MAX_JWKS_BYTES:
                        raise _JwksUnavailable(f"response larger than {_MAX_JWKS_BYTES} bytes")
                    if self._monotonic() > deadline:
                        raise _JwksUnavailable(f"response took over {self._timeout:g} s")
        except requests.RequestException as error:
            raise _JwksUnavailable(type(error).__name__) from None
        try:
            return json.loads(bytes(body))
        except ValueError:
            raise _JwksUnavailable("response is not JSON") from None


class _KeySet(NamedTuple):
    keys: Mapping[tuple[str, str], jwt.PyJWK]  # (kid, alg) -> key bound to that algorithm
    fetched_at: float | None  # monotonic time of the fetch; None for inline keys / never


class _JwksUnavailable(Exception):
    """The JWKS could not be fetched or is not a JWK Set; the message is safe to log."""


class _IssuerKeys:
    """The keys of one trusted issuer: inline ones, and/or fetched and cached with rotation."""

    def __init__(self, issuer: TrustedIssuer, owner: Authenticator) -> None:
        self.issuer = issuer
        self._owner = owner
        self._lock = threading.Lock()
        self._last_attempt: float | None = None
        self._inline: Mapping[tuple[str, str], jwt.PyJWK] = {}
        if issuer.jwks is not None:
            self._inline = _parse_jwks(issuer.jwks, owner.algorithms, strict=True)
            if not self._inline and issuer.jwks_url is None:
                raise ValueError(
                    f"trusted issuer {issuer.iss!r}: no inline key is usable with the configured "
                    f"algorithms ({', '.join(owner.algorithms)})"
                )
        self._keyset = _KeySet({}, None)  # fetched from jwks_url

    def key_for(self, kid: str, alg: str) -> jwt.PyJWK:
        inline = self._inline.get((kid, alg))
        if inline is not None:
            return inline
        url = self.issuer.jwks_url
        if url is None:
            raise _refused("no key with this kid for this algorithm", self.issuer.iss, kid)
        keyset = self._keyset  # replaced atomically, read without the lock
        key = keyset.keys.get((kid, alg))
        if key is not None and self._fresh(keyset):
            return key
        if key is not None and not self._lock.acquire(blocking=False):
            return key  # another thread is re-fetching; the cached key is good meanwhile
        if key is None and not self._lock.acquire(timeout=2 * self._owner._timeout + 1):
            raise _refused("timed out waiting for the issuer's JWKS", self.issuer.iss, kid)
        try:
            return self._refresh_and_get(url, kid, alg)
        finally:
            self._lock.release()

    def _fresh(self, keyset: _KeySet) -> bool:
        return (
            keyset.fetched_at is not None
            and self._owner._monotonic() - keyset.fetched_at < self._owner._max_age
        )

    def _refresh_and_get(self, url: str, kid: str, alg: str) -> jwt.PyJWK:
        """Called with the lock held."""
        iss = self.issuer.iss
        keyset = self._keyset  # another thread may have refreshed while we waited
        key = keyset.keys.get((kid, alg))
        if key is not None and self._fresh(keyset):
            return key
        now = self._owner._monotonic()
        if self._last_attempt is not None and now - self._last_attempt < self._owner._min_refresh:
            if key is not None:
                return key
            if keyset.fetched_at is None:
                raise _refused("the issuer's JWKS is unavailable (recent fetch failed)", iss, kid)
            raise _refused(
                "no key with this kid for this algorithm (JWKS re-fetch rate-limited)", iss, kid
            )
        self._last_attempt = now
        try:
            keys = _parse_jwks(self._owner._fetch_jwks(url), self._owner.algorithms, strict=False)
        except Exception as error:  # a fetch failure is a 401, never a crash
            if not isinstance(error, _JwksUnavailable | ValueError):
                error = _JwksUnavailable(type(error).__name__)
            log.warning("fetching the JWKS of issuer %r failed: %s", _shown(iss), error)
            if key is not None:
                return key  # keep trusting cached keys while the issuer's host is down
            raise _refused(f"the issuer's JWKS is unavailable ({error})", iss, kid) from None
        if not keys:
            log.warning(
                "the JWKS of issuer %r has no key usable with %s",
                _shown(iss),
                ", ".join(self._owner.algorithms),
            )
        self._keyset = _KeySet(keys, now)
        log.info(
            "fetched the JWKS of issuer %r: kids %s",
            _shown(iss),
            sorted({_shown(k) for k, _ in keys}),
        )
        key = keys.get((kid, alg))
        if key is None:
            raise _refused("no key with this kid for this algorithm (after JWKS refresh)", iss, kid)
        return key


def _parse_jwks(
    jwks: Any, algorithms: Sequence[str], *, strict: bool
) -> dict[tuple[str, str], jwt.PyJWK]:
    """Index a JWK Set's public signing keys by (kid, alg), each bound to that algorithm.

    Keys that are not for signature verification, have no kid, are symmetric ("oct"), too weak,
    or do not match an accepted algorithm are skipped; ``strict`` (configured keys) turns a
    malformed or symmetric key into ValueError instead.
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError('not a JWK Set {"keys": [...]}')
    indexed: dict[tuple[str, str], jwt.PyJWK] = {}
    for position, jwk in enumerate(jwks["keys"]):
        problem = _index_jwk(jwk, algorithms, indexed)
        if problem is None:
            continue
        reason, malformed = problem
        if strict and malformed:
            raise ValueError(f"key {position}: {reason}")
        log.debug("JWKS key %d skipped: %s", position, reason)
    return indexed


def _index_jwk(
    jwk: Any, algorithms: Sequence[str], indexed: dict[tuple[str, str], jwt.PyJWK]
) -> tuple[str, bool] | None:
    """Add one JWK to ``indexed``; returns (why it is unusable, is it malformed), or None."""
    if not isinstance(jwk, dict):
        return "not a JSON object", True
    kid, kty, jwk_alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
    if not isinstance(kid, str) or not kid:
        return "no 'kid' (tokens name their key by kid)", True
    if kty not in _PUBLIC_MEMBERS:
        return f"key type {kty!r} is not an asymmetric signing key type", True
    if jwk.get("use", "sig") != "sig":
        return "'use' is not 'sig'", False
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return "'key_ops' does not allow 'verify'", False
    if jwk_alg is not None and jwk_alg not in ASYMMETRIC_ALGORITHMS:
        return f"'alg' {jwk_alg!r} is not an asymmetric signature algorithm", False
    public = {name: jwk[name] for name in _PUBLIC_MEMBERS[kty] if name in jwk}
    for alg in algorithms:
        wanted_kty, curves = ASYMMETRIC_ALGORITHMS[alg]
        if kty != wanted_kty or (jwk_alg is not None and jwk_alg != alg):
            continue
        if curves is not None and jwk.get("crv") not in curves:
            continue
        try:
            key = jwt.PyJWK(public, algorithm=alg)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
            return f"not a valid {kty} key ({type(error).__name__})", True
        if kty == "RSA" and getattr(key.key, "key_size", 0) < _MIN_RSA_BITS:
            return f"RSA key shorter than {_MIN_RSA_BITS} bits", True
        indexed.setdefault((kid, alg), key)
    return None  # usable, or well-formed but for an algorithm not accepted here (unused)


def _bearer_token(authorization_header: str | None) -> str:
    if not authorization_header:
        raise AuthenticationError("no Authorization header")
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("Authorization header is not a Bearer token")
    token = token.strip()
    if not token:
        raise AuthenticationError("Bearer token is empty")
    if len(token) > _MAX_TOKEN_CHARS:
        raise AuthenticationError(f"Bearer token longer than {_MAX_TOKEN_CHARS} characters")
    if not _COMPACT_JWS.fullmatch(token):
        raise AuthenticationError("Bearer token is not a signed JWT (JWS compact serialization)")
    return token


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims before any verification: used to choose the issuer's key and,
    once the signature is verified, as the claims. PyJWT refuses what is not a well-formed
    JWS: non-canonical base64url, a header that is not a JSON object, a ``kid`` that is not a
    string, a malformed or unsupported ``crit``, a detached (``b64: false``) payload."""
    try:
        decoded = _JWS.decode_complete(token, options={"verify_signature": False})
        claims = json.loads(decoded["payload"])
    except Exception:  # any malformation: bad base64, bad JSON, odd header values
        raise AuthenticationError("Bearer token is not a well-formed JWT") from None
    if not isinstance(claims, dict):
        raise AuthenticationError("Bearer token is not a well-formed JWT")
    return decoded["header"], claims


def _numeric_date(claims: Mapping[str, Any], name: str, iss: str, kid: str) -> float:
    value = claims[name]
    # Compared as they are, before any conversion: float() of a huge JSON integer overflows,
    # and NaN (which Python's json reads) compares False, so it is refused too.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= _MAX_NUMERIC_DATE
    ):
        raise _refused(
            f"claim {name!r} must be a NumericDate (seconds since the epoch, 1970 to 9999)",
            iss,
            kid,
        )
    return float(value)


def _fhir_servers(value: object) -> frozenset[str] | None:
    """The ``fhir_servers`` of a trusted-issuers file entry; raises ValueError if malformed."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError("'fhir_servers' must be a non-empty list of FHIR base URLs")
    if not all(isinstance(url, str) for url in value):
        raise ValueError("'fhir_servers' must list FHIR base URLs as strings")
    return frozenset(value)


def _without_trailing_slash(url: str) -> str:
    return url[:-1] if url.endswith("/") else url


def _shown(value: object) -> str:
    """A header value (iss/kid) made safe to put in a log line: printable and short."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 120 else text[:117] + "..."


def _noting_jku(
    error: AuthenticationError, header: Mapping[str, Any], issuer: TrustedIssuer
) -> AuthenticationError:
    """The refusal, saying also that the token's ``jku`` (if any) was not used: the reason an
    operator looks for when a client's keys are published only at a URL not configured."""
    if "jku" not in header or header["jku"] == issuer.jwks_url:
        return error
    return AuthenticationError(
        f"{error}; its header 'jku' is not the issuer's allow-listed JWKS URL, so it was not "
        "fetched"
    )


def _refused(reason: str, iss: object, kid: object) -> AuthenticationError:
    context = []
    if iss is not None:
        context.append(f"iss={_shown(iss)!r}")
    if kid is not None:
        context.append(f"kid={_shown(kid)!r}")
    return AuthenticationError(f"{reason} ({', '.join(context)})" if context else reason)


def _check_jwks_url(iss: str, url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and is_loopback_host(host):
        return
    raise ValueError(
        f"trusted issuer {iss!r}: jwks_url must be an https URL "
        f"(http only to 127.0.0.1, localhost or ::1), not {url!r}"
    )
