"""Parsing JSON from EHRs and FHIR servers without losing a number's exact value.

The rules compare lab values with thresholds in exact decimal arithmetic, so every JSON number
with a fraction or an exponent is read as the Decimal it spells ("2.50" stays
``Decimal('2.50')``), integers as int, and NaN or Infinity are refused. msgspec does this in C
with one ``Decimal`` call per number: about half the cost of ``json.loads(parse_float=Decimal)``.

A hook request is mostly prefetch, and an EHR sends the same patient's prefetch again and
again (order-select, then order-sign, then every new lab result), so ``loads_hook_request``
splits the body into its members as raw text first and decodes a prefetch value only when this
process has not seen exactly that text before (``_DecodedPrefetch``). A repeated prefetch then
costs a scan of its text instead of building thousands of objects, and it comes back as the
same objects as last time, which lets the rules' readings cache find them without serialising
them again (``rules.facts.reading``).

The decoded values are shared between calls and threads. Nothing changes request JSON in
place: the data layer builds new lists and the cards copy what they change (``clean_copy``);
``tests/test_exact_json.py`` holds every scenario to that.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")
K = TypeVar("K")

_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # thread-safe, built once per process
# The members of a JSON object as raw text. Skipping checks the structure and escapes; UTF-8
# and numbers are checked when a member is decoded.
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def loads_exact(raw: bytes) -> Any:
    """JSON text (UTF-8) as Python values with exact numbers.

    Raises UnicodeDecodeError for text that is not UTF-8, msgspec.DecodeError (a ValueError)
    for text that is not JSON, and RecursionError for JSON nested too deeply."""
    return _DECODER.decode(raw)


def why_invalid(raw: bytes, error: ValueError) -> str:
    """What is wrong with JSON text that ``loads_exact`` refused, for the client: the standard
    library's message names the line and column (and NaN or Infinity as such); msgspec's
    names a byte offset. Only on the error path, so its cost does not matter."""
    try:  # str, not bytes: given bytes, json.loads would skip a byte order mark
        json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as described:
        return str(described)
    return str(error)  # the standard library accepts it (e.g. a lone surrogate); msgspec not


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _DecodedPrefetch:
    """Per process: decoded prefetch values by their exact text, bounded by total text size.

    Also knows which objects it holds (each value and, in a Bundle, each entry's resource), so
    that ``ObjectMemo`` remembers work for those long-lived shared objects only. Crude but safe
    bound: when full, it starts again empty (a miss only costs a decode), and a new
    ``generation`` tells the memos to forget too."""

    def __init__(self, max_bytes: int, max_entries: int) -> None:
        self._values: dict[bytes, Any] = {}
        self._held: dict[int, Any] = {}
        self._bytes = 0
        # Whole prefetch objects, found by a signature of their text (``text_signature``) and
        # compared in full: the text and its members, as ``decode`` gave them. Bounded apart
        # (they hold only their text and references to remembered values).
        self._wholes: dict[tuple[int, bytes, bytes], tuple[bytes, tuple[tuple[str, Any], ...]]]
        self._wholes = {}
        self._whole_bytes = 0
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self.generation = 0

    def decode(self, text: bytes) -> Any:
        known = self._values.get(text, _MISSING)
        if known is not _MISSING:
            return known
        value = loads_exact(text)  # raises before anything is remembered
        with self._lock:
            if len(self._values) >= self._max_entries or (
                self._bytes + len(text) > self._max_bytes
            ):
                self._values = {}
                self._held = {}
                self._bytes = 0
                self._wholes = {}
                self._whole_bytes = 0
                self.generation += 1
            self._values[text] = value
            self._bytes += len(text)
            for held in _shared_parts(value):
                self._held[id(held)] = held
        return value

    def known_members(self, text: bytes) -> dict[str, Any] | None:
        """What ``decode_members(text)`` gives, in a new dict, when this process has decoded
        exactly this text before; else None."""
        known = self._wholes.get(text_signature(text))
        return dict(known[1]) if known is not None and known[0] == text else None

    def decode_members(self, text: bytes) -> dict[str, Any]:
        """The JSON object ``text`` (a prefetch) as {key: ``decode(value text)``}, in a new
        dict. A prefetch sent again whole is found by its text, which spares a second scan of
        ~100 KB (the body's split already scanned it once). Raises what ``decode`` raises."""
        signature = text_signature(text)
        known = self._wholes.get(signature)
        if known is not None and known[0] == text:
            return dict(known[1])
        generation = self.generation
        members = {key: self.decode(bytes(value)) for key, value in _MEMBERS.decode(text).items()}
        with self._lock:
            # After a clear the values may no longer be held: remember nothing of them.
            if self.generation == generation:
                if len(self._wholes) >= self._max_entries or (
                    self._whole_bytes + len(text) > self._max_bytes
                ):
                    self._wholes = {}
                    self._whole_bytes = 0
                self._wholes[signature] = (text, tuple(members.items()))
                self._whole_bytes += len(text)
        return members

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is one of the remembered objects (and so lives on)."""
        return self._held.get(id(value)) is value


def text_signature(text: bytes) -> tuple[int, bytes, bytes]:
    """A cheap key for a long text: hashing 100 KB costs several times comparing it, and the
    text is compared in full anyway. Texts that share a signature only replace each other."""
    return len(text), text[:64], text[-64:]


def _shared_parts(value: Any) -> list[Any]:
    """A prefetch value and, in a Bundle, the resources of its entries."""
    parts = [value]
    entries = value.get("entry") if isinstance(value, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            parts.append(resource)
    return parts


_MISSING = object()
# About thirty six-month histories; decoded objects take several times their text.
_PREFETCH = _DecodedPrefetch(max_bytes=4 * 1024 * 1024, max_entries=500)


def loads_hook_request(raw: bytes) -> Any:
    """A CDS Hooks request body, as ``loads_exact`` gives it, with repeated prefetch values
    decoded once per process (see the module doc). Raises what ``loads_exact`` raises."""
    try:
        known = _with_known_prefetch_last(raw)
    except Exception:  # whatever is wrong, the full split below says it as it always did
        known = None
    if known is not None:
        return known
    try:
        members = _MEMBERS.decode(raw)
    except msgspec.ValidationError:  # JSON, but not an object: the envelope check says so
        return loads_exact(raw)
    return _decoded_members(members)


def _decoded_members(members: dict[str, msgspec.Raw]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, member in members.items():
        text = bytes(member)
        if name == "prefetch" and text.startswith(b"{"):
            body[name] = _PREFETCH.decode_members(text)
        else:
            body[name] = loads_exact(text)
    return body


_JSON_SPACE = b" \t\n\r"  # JSON's whitespace only (bytes.strip() would take more)
_PREFETCH_KEY = b'"prefetch"'


def _with_known_prefetch_last(raw: bytes) -> dict[str, Any] | None:
    """The body, when it ends with a ``"prefetch"`` member whose exact text this process has
    decoded before (EHRs send the prefetch last, and the same again); else None.

    Splitting the body scans every byte of it, ~100 KB of which is that prefetch; here only
    the members before it are split. Gives exactly what the full split gives: the prefetch
    text is known to be a valid JSON object, and the text before its key, closed with "}",
    must decode as an object (so it ends with a comma at the top level, outside any string,
    and the key found is the body's last member). Anything else returns None."""
    end = len(raw)
    while end and raw[end - 1] in _JSON_SPACE:
        end -= 1
    if not end or raw[end - 1] != ord("}"):
        return None
    end -= 1  # the body's closing brace
    while end and raw[end - 1] in _JSON_SPACE:
        end -= 1
    at = raw.rfind(_PREFETCH_KEY, 0, end)
    if at < 0:
        return None
    start = at + len(_PREFETCH_KEY)
    while start < end and raw[start] in _JSON_SPACE:
        start += 1
    if start == end or raw[start] != ord(":"):
        return None
    start += 1
    while start < end and raw[start] in _JSON_SPACE:
        start += 1
    prefetch = _PREFETCH.known_members(raw[start:end])
    if prefetch is None:
        return None
    head = raw[:at].rstrip(_JSON_SPACE)
    if head == b"{":
        body: dict[str, Any] = {}
    elif head.endswith(b","):
        members = _MEMBERS.decode(head[:-1] + b"}")  # raises unless an object's members
        if not members:
            return None  # "{ ," is not JSON
        body = _decoded_members(members)
    else:
        return None
    body["prefetch"] = prefetch  # a repeated key: its first place, its last value
    return body


class _GenerationStore(Generic[K, T]):
    """The bounded, per-prefetch-generation store both memos keep their results in."""

    def __init__(self, *, max_size: int, size: Callable[[T], int]) -> None:
        self._size = size
        self._max_size = max_size
        self._known: dict[K, tuple[Any, T]] = {}
        self._total = 0
        self._generation = _PREFETCH.generation
        self._lock = threading.Lock()

    def _keep(self, key: K, kept: Any, result: T, generation: int) -> None:
        """Remember ``result`` (with ``kept`` alive beside it) unless the prefetch was
        forgotten since ``generation`` was read; start again empty when full or outdated."""
        size = self._size(result)
        with self._lock:
            if _PREFETCH.generation != generation:
                return  # the prefetch was forgotten meanwhile: keep nothing of it
            if self._generation != generation or self._total + size > self._max_size:
                self._known = {}
                self._total = 0
                self._generation = generation
            self._known[key] = (kept, result)
            self._total += size


class ObjectMemo(_GenerationStore[int, T]):
    """Per process: what ``compute`` gave for a shared prefetch object, by its identity.

    A repeated prefetch comes back as the very same objects (``loads_hook_request``), so work
    derived from them needs doing once while they are remembered; correct only because request
    JSON is never changed in place. Any other object (a draft order, this call's new results)
    is computed afresh and not kept. Each entry keeps its object, so an id is never reused
    while it is remembered. The memo starts again empty after the decoded prefetch did (a new
    generation) and when its results reach ``max_size`` in total (``size`` of each). Results
    are shared too: callers must not change them.
    """

    def __init__(
        self, compute: Callable[[Any], T], *, max_size: int, size: Callable[[T], int]
    ) -> None:
        super().__init__(max_size=max_size, size=size)
        self._compute = compute

    def __call__(self, value: Any) -> T:
        known = self._known.get(id(value))
        if known is not None and known[0] is value:  # the entry keeps its object: same id
            return known[1]
        generation = _PREFETCH.generation  # read first: a clear after it is noticed below
        if not _PREFETCH.holds(value):
            return self._compute(value)
        result = self._compute(value)
        self._keep(id(value), value, result, generation)
        return result


def shared_prefix(items: list[Any]) -> int:
    """How many of the first items are remembered prefetch objects (see ``ItemsMemo``)."""
    for position, item in enumerate(items):
        if not _PREFETCH.holds(item):
            return position
    return len(items)


class ItemsMemo(_GenerationStore[tuple[int, ...], T]):
    """Per process: what a computation gave for a list of shared prefetch objects, by the
    identities of its items, in order.

    For lists built afresh by every call from the same shared objects (a history's resources,
    picked out of a remembered Bundle): the list is new, its items are not. Like
    ``ObjectMemo``, correct only because request JSON is never changed in place, and only lists
    whose every item is a remembered prefetch object are kept (with their items, so that no id
    is reused while an entry lives); any other list is computed afresh. The computation must
    depend on nothing but the items' content. Starts again empty with a new prefetch generation
    and when the results reach ``max_size`` in total (``size`` of each). Results are shared:
    callers must not change them.
    """

    def known(self, items: list[Any]) -> tuple[T] | None:
        """``(result,)`` when this list's items were computed before, else None."""
        entry = self._known.get(tuple(map(id, items)))
        # The entry keeps its items alive: the same ids are the same items.
        return None if entry is None else (entry[1],)

    def __call__(self, items: list[Any], compute: Callable[[list[Any]], T]) -> T:
        key = tuple(map(id, items))
        known = self._known.get(key)
        if known is not None:  # the entry keeps its items alive: the same ids, the same items
            return known[1]
        generation = _PREFETCH.generation  # read first: a clear after it is noticed below
        result = compute(items)
        if all(_PREFETCH.holds(item) for item in items):
            self._keep(key, tuple(items), result, generation)
        return result
