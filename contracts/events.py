"""Events as both sides see them: build one, check one, read one.

An event travels as one JSON object, its envelope:

    {"id": "5b0f…", "type": "order.placed", "version": 1,
     "occurred_at": "2026-11-25T12:00:00+00:00", "source": "shop", "data": {...}}

`type` is also the routing key on the `events` exchange (topology.py); `version` says which
schema the event follows. Each type and version has one JSON Schema file,
schemas/<type>.v<version>.json, and both sides check every event against it: the publisher
before it sends (its own bug stays at home), the consumer before it acts (whatever arrives).
A consumer names the versions it can read; anything else is refused with a reason a person
can act on, and the consumer dead-letters it (see README.md here for versioning).
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
CONTENT_TYPE = "application/json"
# An event describes one order; anything this big is not one of ours.
MAX_BODY_BYTES = 1024 * 1024
# A reason is read by people on the dead-letter pages: long enough to say what, not the body.
MAX_REASON_CHARS = 300


class ContractError(ValueError):
    """The message is not an event this side can read; str() says why."""


# jsonschema checks "date-time" only with an optional package; the standard library does it.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def is_aware_datetime(value):
    if not isinstance(value, str):
        return True  # the schema's "type" says what is wrong with it
    return datetime.fromisoformat(value).tzinfo is not None


def _load_validators():
    validators = {}
    for path in sorted(SCHEMA_DIR.glob("*.v*.json")):
        event_type, _, version = path.stem.rpartition(".v")
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        validators[event_type, int(version)] = Draft202012Validator(schema, format_checker=FORMATS)
    return validators


# {(type, version): validator}, one per schema file.
VALIDATORS = _load_validators()


def known_versions(event_type):
    return sorted(version for kind, version in VALIDATORS if kind == event_type)


def require_schemas(accept):
    """Fail at start-up, not on the first message, if a consumer reads a version with no schema."""
    missing = [
        f"{kind} v{v}"
        for kind, versions in accept.items()
        for v in versions
        if (kind, v) not in VALIDATORS
    ]
    if missing:
        raise LookupError(f"no schema in {SCHEMA_DIR.name}/ for {', '.join(missing)}")
    return accept


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    version: int
    occurred_at: str
    source: str
    data: dict = field(hash=False)

    def envelope(self):
        return {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurred_at": self.occurred_at,
            "source": self.source,
            "data": self.data,
        }

    def body(self):
        """The bytes to publish (UTF-8 JSON)."""
        return json.dumps(self.envelope(), ensure_ascii=False, separators=(",", ":")).encode()


def new_event(event_type, version, data, *, source, event_id=None, occurred_at=None):
    """An event of `event_type`/`version`, checked against its schema before it goes anywhere.

    Give `event_id` when the same event may be built twice (a retried publish): every copy must
    carry the same id, so that consumers can tell a copy from a new event.
    """
    event = Event(
        id=str(event_id or uuid.uuid4()),
        type=event_type,
        version=version,
        occurred_at=(occurred_at or datetime.now(UTC)).isoformat(),
        source=source,
        data=data,
    )
    _check(event.envelope(), accept=None)
    return event


def parse(body, content_type=CONTENT_TYPE, *, accept):
    """Read a message body as an event of one of the `accept`ed types and versions.

    `accept` is {type: versions}, what the caller can act on, e.g. {"order.placed": (1,)}.
    Raises ContractError, with the reason, for anything else: another content type, bytes that
    are not UTF-8 JSON, an envelope without type or version, a type or version the caller does
    not read, data that breaks the schema.
    """
    envelope = _decode(body, content_type)
    _check(envelope, accept)
    return Event(**{name: envelope[name] for name in Event.__dataclass_fields__})


def problem_with(body, content_type=CONTENT_TYPE, *, accept=None):
    """Why `body` is not a readable event (a sentence), or None if it is one."""
    try:
        parse(body, content_type, accept=accept)
    except ContractError as exc:
        return str(exc)
    return None


def _decode(body, content_type):
    if content_type != CONTENT_TYPE:
        raise ContractError(f"content type {content_type!r} is not {CONTENT_TYPE!r}")
    if isinstance(body, str):
        body = body.encode()
    if len(body) > MAX_BODY_BYTES:
        raise ContractError(f"the body is {len(body)} bytes, over the {MAX_BODY_BYTES} allowed")
    try:
        # NaN and Infinity are Python's extension of JSON, not JSON: other readers choke on them.
        return json.loads(body.decode(), parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(_short(f"the body is not valid JSON: {exc}")) from None


JSON_TYPES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _not_json(constant):
    raise ValueError(f"{constant} is not a JSON number")


def _check(envelope, accept):
    if not isinstance(envelope, dict):
        raise ContractError(f"the event is a JSON {JSON_TYPES[type(envelope)]}, not an object")
    event_type, version = envelope.get("type"), envelope.get("version")
    if not isinstance(event_type, str) or isinstance(version, bool) or not isinstance(version, int):
        raise ContractError(
            "not an event envelope: it needs a string 'type' and an integer 'version'"
        )
    if accept is not None and event_type not in accept:
        raise ContractError(f"{event_type!r} is not an event this consumer reads ({_list(accept)})")
    readable = accept[event_type] if accept is not None else known_versions(event_type)
    if not known_versions(event_type):
        raise ContractError(f"unknown event type {event_type!r}")
    if version not in readable or (event_type, version) not in VALIDATORS:
        versions = ", ".join(str(v) for v in readable) or "none"
        raise ContractError(
            f"unknown version {version} of {event_type}: this side reads version {versions}"
        )
    error = best_match(VALIDATORS[event_type, version].iter_errors(envelope))
    if error is not None:
        where = _path(error.absolute_path)
        raise ContractError(
            _short(f"{event_type} v{version} breaks its schema: {where}{error.message}")
        )


def _path(parts):
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return f"{text}: " if text else ""


def _list(accept):
    return ", ".join(f"{kind} v{'/'.join(map(str, versions))}" for kind, versions in accept.items())


def _short(text):
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
