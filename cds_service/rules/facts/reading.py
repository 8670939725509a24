"""Reading raw FHIR JSON: pick resources by type and code first, then validate only those.

Validation uses ``fhir.resources.R4B``. One malformed element costs that element, not the
resource (``_ELEMENTS``): an element no rule reads is left out in silence (the CDS Hooks
Sandbox sends a MedicationRequest's ``category`` as an object, R4 wants a list); one a rule
reads is left out and named, with what was expected, in ``Problems.invalid`` so a review card
shows it; a malformed modifier element (or one whose absence a reading would fill from another
element) leaves the resource unread, skipped and named in ``Problems.invalid``. It never fails
evaluation.

FHIR requires a time zone on every date-time with a time, and the models reject zone-less
ones, but EHRs (Epic) send them. Before validation such date-times are read, deliberately,
in ``RuleSettings.default_timezone``; the resource is remembered so the card can say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from typing import Any, TypeVar

import msgspec
from pydantic import BaseModel, ValidationError

from cds_service.rules.inputs import JsonDict

M = TypeVar("M", bound=BaseModel)

_ZONELESS = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2})(:[0-9]{2}(\.[0-9]+)?)?")
# The same, as a whole JSON string in a resource's encoding: most resources hold none, and one
# search of their encoding costs a fifth of visiting every value.
_ZONELESS_IN_JSON = re.compile(rb'"' + _ZONELESS.pattern.encode() + rb'"')
_ENCODER = msgspec.json.Encoder()


@dataclass
class Problems:
    """What could not be read, collected while gathering facts, for review cards."""

    invalid: list[str] = field(default_factory=list)  # "Observation/x (why)"
    uninterpretable: list[str] = field(default_factory=list)  # values/units not read exactly
    zone_assumed: set[str] = field(default_factory=set)  # "Observation/x" references

    def add(self, other: Problems) -> None:
        """``other``'s notes after these (noted elsewhere, in the order they were read)."""
        self.invalid += other.invalid
        self.uninterpretable += other.uninterpretable
        self.zone_assumed |= other.zone_assumed


def reference_of(resource: JsonDict) -> str:
    return f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}"


def _offset_text(zone: tzinfo, naive: datetime) -> str:
    offset = zone.utcoffset(naive) or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _with_zones(value: Any, zone: tzinfo, found: list[bool]) -> Any:
    """The JSON with every zone-less date-time given the default zone's offset: a copy of what
    holds one, the very value where nothing does (validation never changes its input)."""
    if isinstance(value, str):
        # The shape's "T" at index 10 is looked at first: most strings are not date-times.
        if len(value) >= 16 and value[10] == "T" and (match := _ZONELESS.fullmatch(value)):
            found.append(True)
            seconds = match.group(3) or ":00"
            naive = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}{seconds}")
            return f"{match.group(1)}T{match.group(2)}{seconds}{_offset_text(zone, naive)}"
        return value
    if isinstance(value, dict):
        changed = {
            key: fixed
            for key, item in value.items()
            if (fixed := _with_zones(item, zone, found)) is not item
        }
        return {**value, **changed} if changed else value
    if isinstance(value, list):
        items = [_with_zones(item, zone, found) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def _prepared(
    resource: JsonDict,
    model: type[BaseModel],
    resource_type: str,
    zone: tzinfo,
    found: list[bool],
) -> JsonDict:
    """What is validated: the resource without the elements of its type that no rule reads and
    none needs readable (``_ELEMENTS``), zone-less date-times given the default zone.

    Such an element is left out before validation rather than after it: malformed, it would
    be left out in silence anyway (``_cuts``); well-formed, nothing reads it; either way
    validating it cost up to a third of the resource's validation. A name that is no element
    of the type is kept, so that validation names it (a misspelt element)."""
    elements = _ELEMENTS.get(resource_type)
    prepared = (
        resource if elements is None else _read_part(resource, model, resource_type, elements)
    )
    return _with_zones(prepared, zone, found) if _may_hold_zoneless(prepared) else prepared


def _read_part(
    resource: JsonDict, model: type[BaseModel], resource_type: str, elements: _Elements
) -> JsonDict:
    """The resource's elements that are validated (``_Elements.kept``, names of no element),
    each item of a listed element without its unread children (``_UNREAD_CHILDREN``)."""
    known, kept = _element_names(model, elements)
    part = {key: value for key, value in resource.items() if key in kept or key not in known}
    for name, unread in _UNREAD_CHILDREN.get(resource_type, {}).items():
        items = part.get(name)
        if isinstance(items, list):  # each item kept, so that none takes another's place
            part[name] = [
                {k: v for k, v in item.items() if k.removeprefix("_") not in unread}
                if isinstance(item, dict)
                else item
                for item in items
            ]
    return part


def _may_hold_zoneless(resource: JsonDict) -> bool:
    try:
        return _ZONELESS_IN_JSON.search(_ENCODER.encode(resource)) is not None
    except (TypeError, ValueError, OverflowError):  # not encodable as JSON: visit every value
        return True


@cache
def _element_names(
    model: type[BaseModel], elements: _Elements
) -> tuple[frozenset[str], frozenset[str]]:
    """The JSON names of a resource type's elements ("_status" for the extensions of
    ``status``), and those of them that are validated: a table per model class, built once."""
    known = frozenset(field.alias or name for name, field in model.model_fields.items())
    return known, frozenset(n for n in known if _is_among(n.removeprefix("_"), elements.kept))


def validate(model: type[M], resource: JsonDict, zone: tzinfo, problems: Problems) -> M | None:
    """The resource as a validated ``model``, or None (and a note in ``problems``).

    Costs a fhir.resources validation (tens of microseconds to a millisecond), so callers pick
    the resources a rule reads from the raw JSON first and validate only those."""
    parsed, zone_assumed, invalid, left_out = _validate(model, resource, zone)
    if invalid is not None:
        problems.invalid.append(f"{reference_of(resource)} ({invalid})")
    problems.invalid.extend(f"{reference_of(resource)} {note}" for note in left_out)
    if zone_assumed:
        problems.zone_assumed.add(reference_of(resource))
    return parsed  # type: ignore[return-value]


_Outcome = tuple[BaseModel | None, bool, str | None, tuple[str, ...]]


def _validate(model: type[BaseModel], resource: JsonDict, zone: tzinfo) -> _Outcome:
    """(model or None, zone assumed, why invalid, notes on the read elements left out)."""
    found: list[bool] = []
    resource_type = str(resource.get("resourceType") or model.__name__)
    prepared = _prepared(resource, model, resource_type, zone, found)
    left_out: list[str] = []
    for _ in range(_MAX_PASSES):
        try:
            parsed = model.model_validate(prepared)
        except ValidationError as error:
            cuts = _cuts(error, resource_type, prepared)
            if cuts is None:
                fields = sorted(
                    {".".join(str(part) for part in e["loc"][:2]) for e in error.errors()}
                )
                return None, False, f"invalid: {', '.join(fields[:3])}", ()
            for path, note in cuts:
                prepared = _without(prepared, path)
                if note is not None:
                    left_out.append(note)
            continue
        return parsed, bool(found), None, tuple(left_out)
    return None, False, "invalid: too many malformed elements", ()


# Per resource type, the elements the rules read (a choice element by its prefix, "value" for
# value[x]), and the elements that must be readable for the resource to be used at all: FHIR's
# modifier elements (they change what the whole resource means) and elements whose absence a
# reading fills from another one (an Observation's effective[x], else ``issued``; an
# AdverseEvent's outcome, "ongoing" when absent). A type not listed has every element read.
@dataclass(frozen=True)
class _Elements:
    read: frozenset[str]
    required_readable: frozenset[str]
    kept: frozenset[str]  # both: what is validated (``_prepared``)


_ALWAYS_REQUIRED = frozenset({"resourceType", "modifierExtension", "implicitRules"})


def _elements(read: set[str], required_readable: set[str]) -> _Elements:
    required = frozenset(required_readable) | _ALWAYS_REQUIRED
    return _Elements(frozenset(read), required, frozenset(read) | required)


_ELEMENTS: dict[str, _Elements] = {
    "MedicationRequest": _elements(
        {"id", "subject", "authoredOn", "dosageInstruction", "medication", "contained"},
        {"status", "intent", "doNotPerform"},
    ),
    "Medication": _elements({"id", "code", "ingredient", "form", "amount"}, {"status"}),
    "Observation": _elements(
        {
            "id",
            "code",
            "subject",
            "value",
            "dataAbsentReason",
            "referenceRange",
            "component",
            "specimen",
            "hasMember",
            "derivedFrom",
            "interpretation",
        },
        {"status", "effective", "issued"},
    ),
    "Condition": _elements(
        {"id", "code", "subject", "onset", "abatement", "recordedDate"},
        {"clinicalStatus", "verificationStatus"},
    ),
    "Procedure": _elements({"id", "code", "subject", "performed"}, {"status"}),
    "AllergyIntolerance": _elements(
        {"id", "code", "patient", "onset", "recordedDate", "reaction"},
        {"clinicalStatus", "verificationStatus"},
    ),
    "AdverseEvent": _elements(
        {"id", "event", "subject", "severity", "suspectEntity", "extension", "recordedDate"},
        {"actuality", "outcome", "date", "detected"},
    ),
    "Patient": _elements({"id", "birthDate", "gender", "extension"}, {"active"}),
}
# Children of a read element that no rule reads, left out of each of its items before
# validation as the unread elements are (``_prepared``): the order readers read a dosage's
# timing and dose only (the suggestions copy the order as sent).
_UNREAD_CHILDREN: dict[str, dict[str, frozenset[str]]] = {
    "MedicationRequest": {
        "dosageInstruction": frozenset(
            {
                "sequence",
                "text",
                "additionalInstruction",
                "patientInstruction",
                "asNeededBoolean",
                "asNeededCodeableConcept",
                "site",
                "route",
                "method",
                "maxDosePerPeriod",
                "maxDosePerAdministration",
                "maxDosePerLifetime",
            }
        )
    }
}
_MAX_PASSES = 8  # each pass leaves out at least one element; a resource has few malformed ones


def _is_among(name: str, elements: frozenset[str]) -> bool:
    """Whether an element name is one of ``elements`` or a choice type of one ("valueQuantity"
    of "value"): a prefix followed by a capital letter."""
    if name in elements:
        return True
    return any(name.startswith(e) and name[len(e) : len(e) + 1].isupper() for e in elements)


def _cuts(
    error: ValidationError, resource_type: str, prepared: JsonDict
) -> list[tuple[tuple[str | int, ...], str | None]] | None:
    """What to leave out so that the rest validates: (path, note naming it or None), or None
    when the resource cannot be used (a malformed element it cannot do without)."""
    elements = _ELEMENTS.get(resource_type)
    cuts: dict[tuple[str | int, ...], str | None] = {}
    for detail in error.errors():
        named = _json_path(detail["loc"], prepared)
        # An absent required element: what is malformed is the element that lacks it.
        path = named[:-1] if "missing" in detail["type"] else named
        if not path or not isinstance(path[0], str):
            return None  # the resource itself, or one of its own required elements absent
        name = path[0]
        if elements is not None and _is_among(name, elements.required_readable):
            return None
        unknown = detail["type"] == "extra_forbidden"  # not FHIR: maybe a misspelt element
        if elements is not None and not unknown and not _is_among(name, elements.read):
            cuts.setdefault((name,), None)  # no rule reads it: left out in silence
            continue
        cut = _element_path(path)
        if cut not in cuts or cuts[cut] is None:
            cuts[cut] = f"{_path_text(named)}: {_expected(detail)}" + (
                f"; {_path_text(cut)} not read" if cut != named else "; not read"
            )
    return list(cuts.items())


def _json_path(loc: tuple[str | int, ...], document: Any) -> tuple[str | int, ...]:
    """The part of a pydantic error location that names JSON in ``document``, with the name of
    an absent element last (pydantic adds names of its own, such as "root", which are not)."""
    path: list[str | int] = []
    value = document
    for part in loc:
        if isinstance(value, dict) and isinstance(part, str):
            if part not in value:
                if not part.startswith("root"):
                    path.append(part)  # an absent element that is required
                break
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            break
        path.append(part)
    return tuple(path)


def _element_path(path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The element left out for an error at ``path``: the top-level element and its child
    (``dosageInstruction[0].timing``), so no part of a structure is read without the rest (a
    timing without its malformed frequency would read as once a period). A list is left out
    whole, never one item of it: the next item would take the place (and index) of the one
    left out, and ``dosageInstruction[0]`` would be another instruction."""
    cut: list[str | int] = []
    names = 0
    for part in path:
        if isinstance(part, str):
            if names == 2:
                break
            names += 1
        cut.append(part)
    while cut and isinstance(cut[-1], int):
        cut.pop()
    return tuple(cut)


def _path_text(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}


def _expected(detail: Any) -> str:
    """What the element should have been, in words, and what was sent (its JSON type only)."""
    kind = str(detail["type"])
    context = detail.get("ctx") or {}
    given = detail.get("input")
    sent = next((t for cls, t in _JSON_TYPES.items() if isinstance(given, cls)), "a number")
    if kind == "list_type":
        return f"expected a list, got {sent}"
    if kind == "extra_forbidden":
        return "not an element of this resource type"
    if "missing" in kind:
        return "a required element is absent"
    if kind == "model_validation_format" and "model_class" in context:
        return f"expected {context['model_class']} (an object), got {sent}"
    message = str(detail["msg"]).removeprefix("Value error, ")
    spec = re.match(r"(\w+) value string does not match spec regex", message)
    if spec:
        return f"expected a FHIR {spec.group(1)[0].lower()}{spec.group(1)[1:]}"
    if kind.endswith("_type"):
        return f"expected {kind.removesuffix('_type').replace('_', ' ')}, got {sent}"
    return message.rstrip(".")


def _without(document: JsonDict, path: tuple[str | int, ...]) -> JsonDict:
    """A copy of ``document`` without the element at ``path``, which names an element, never a
    list item (see ``_element_path``); the input is never changed (the cards quote the
    order as sent). Nothing to leave out when an enclosing element is already left out."""
    head, rest = path[0], path[1:]
    if head not in document:
        return document
    if not rest:
        return {key: value for key, value in document.items() if key != head}
    copy = dict(document)
    copy[head] = _without_in(copy[head], rest)
    return copy


def _without_in(value: Any, path: tuple[str | int, ...]) -> Any:
    head = path[0]
    if isinstance(value, list) and isinstance(head, int) and len(path) > 1:
        return [_without_in(item, path[1:]) if i == head else item for i, item in enumerate(value)]
    if isinstance(value, dict) and isinstance(head, str):
        return _without(value, path)
    return value


def of_type(resources: Iterable[JsonDict], resource_type: str) -> list[JsonDict]:
    return [r for r in resources if isinstance(r, dict) and r.get("resourceType") == resource_type]


def _as_dict(concept: Any) -> dict[str, Any]:
    """A raw or validated CodeableConcept as a dict; anything malformed as an empty one."""
    if isinstance(concept, dict):  # raw JSON, the common case, first: a model check costs more
        return concept
    if isinstance(concept, BaseModel):
        return concept.model_dump(mode="python")
    return {}


def as_list(value: Any) -> list[Any]:
    """A JSON value that should be an array, or [] when it is anything else."""
    return value if isinstance(value, list) else []


def codings(concept: Any) -> list[tuple[str, str]]:
    """(system, code) pairs of a raw or validated CodeableConcept."""
    if isinstance(concept, dict):  # raw JSON, the common case, first: a model check costs more
        return [
            (str(c.get("system") or ""), str(c.get("code") or ""))
            for c in as_list(concept.get("coding"))
            if isinstance(c, dict)
        ]
    if isinstance(concept, BaseModel):  # read the model directly: a dump costs far more
        return [
            (str(c.system or ""), str(c.code or "")) for c in getattr(concept, "coding", None) or []
        ]
    return []


def codes_in(concept: Any, system: str) -> set[str]:
    return {code for sys, code in codings(concept) if sys == system}


def concept_text(concept: Any) -> str:
    """All human text of a concept (text and displays), lower case, for name fallbacks."""
    raw = _as_dict(concept)
    parts = [str(raw.get("text") or "")]
    parts += [
        str(c.get("display") or "") for c in as_list(raw.get("coding")) if isinstance(c, dict)
    ]
    return " ".join(parts).strip().lower()


def text_field(resource: JsonDict, key: str) -> str | None:
    """A string field of raw JSON, or None when absent or malformed (read before validating)."""
    value = resource.get(key)
    return value if isinstance(value, str) else None


def dict_field(resource: JsonDict, key: str) -> JsonDict:
    value = resource.get(key)
    return value if isinstance(value, dict) else {}


def as_instant(value: Any, zone: tzinfo) -> datetime | None:
    """A FHIR date/dateTime (validated) as an aware datetime; partial dates at their start."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    if isinstance(value, str) and re.fullmatch(r"\d{4}(-\d{2})?", value):
        year, _, month = value.partition("-")
        return datetime(int(year), int(month or 1), 1, tzinfo=zone)
    return None


def shown(moment: datetime | None) -> str:
    """A time for the card: ISO date-time in UTC (what "now" is compared in)."""
    if moment is None:
        return "date unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
