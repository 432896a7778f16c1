"""Inbound CloudEvents: decoding structured, batched and binary messages into one checked shape.

The HTTP and NATS protocol bindings carry CloudEvents the same two ways: *structured* (the whole
event as ``application/cloudevents+json``) and *binary* (attributes in ``ce-*`` headers, the
data as the body, its media type in ``content-type``). HTTP adds *batched*
(``application/cloudevents-batch+json``, a JSON array of structured events). Every way ends in an
:class:`InboundEvent`, checked against CloudEvents 1.0 by the ``cloudevents`` library after the
required attributes were found present (the library would invent a missing ``id``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote

from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent

from accord.errors import EventInvalid

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("id", "source", "specversion", "type")
KNOWN = frozenset(
    {*REQUIRED, "subject", "time", "datacontenttype", "dataschema", "data", "data_base64"}
)
MAX_ATTRIBUTE = 256
"""The longest ``id``, ``source`` and ``type`` Accord stores."""

_JSON_MEDIA = re.compile(r"^(application|text)/([A-Za-z0-9\-.]+\+)?json(\s*;.*)?$", re.IGNORECASE)

Mode = Literal["structured", "batch", "binary"]


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One CloudEvent as received: its attributes, its data, and its extension attributes.

    ``data`` is the decoded JSON value when the data is JSON (``datacontenttype`` absent or a
    JSON media type), else the text or bytes as sent.
    """

    id: str
    source: str
    type: str
    subject: str | None = None
    time: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        """What trigger expressions see as ``event``."""
        return {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
            "extensions": dict(self.extensions),
        }

    def to_structured(self) -> dict[str, Any]:
        """The event in the structured JSON format."""
        out: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        for name in ("subject", "time", "datacontenttype", "dataschema"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extensions)
        if isinstance(self.data, bytes):
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        elif self.data is not None:
            out["data"] = self.data
        return out


def read_event(value: InboundEvent | Mapping[str, Any] | str | bytes) -> InboundEvent:
    """One event from an :class:`InboundEvent`, a structured event (parsed or as JSON text).

    Raises:
        EventInvalid: as :func:`decode_message` does.
    """
    if isinstance(value, InboundEvent):
        return value
    if isinstance(value, str | bytes):
        encoded = value.encode("utf-8") if isinstance(value, str) else value
        return structured_event(_json_body(encoded, "a structured CloudEvent"))
    return structured_event(dict(value))


def content_mode(headers: Mapping[str, str]) -> Mode | None:
    """How a message carries its event(s), from its headers; None if it carries none."""
    lowered = {k.lower(): v for k, v in headers.items()}
    media = lowered.get("content-type", "").split(";")[0].strip().lower()
    if media == STRUCTURED:
        return "structured"
    if media == BATCH:
        return "batch"
    if "ce-specversion" in lowered:
        return "binary"
    return None


def decode_message(headers: Mapping[str, str], body: bytes) -> list[InboundEvent]:
    """The events an HTTP request or NATS message carries, in any content mode.

    Raises:
        EventInvalid: the message carries no CloudEvent, is not JSON where JSON is due, or an
            event breaks CloudEvents 1.0 (the error names the attribute, and the batch index).
    """
    mode = content_mode(headers)
    if mode == "structured":
        return [structured_event(_json_body(body, "a structured CloudEvent"))]
    if mode == "batch":
        return batch_events(_json_body(body, "a CloudEvents batch"))
    if mode == "binary":
        return [binary_event(headers, body)]
    raise EventInvalid(
        "the message carries no CloudEvent: its content-type is neither "
        f"{STRUCTURED} nor {BATCH}, and it has no ce-specversion header",
        hint="send the event as application/cloudevents+json, or its attributes as ce-* headers",
        attribute="content-type",
    )


def _json_body(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventInvalid(
            f"the body is not JSON, so it cannot be {what}: {exc}",
            hint="check the request body; a structured event is one JSON object",
        ) from exc


def batch_events(value: Any) -> list[InboundEvent]:
    """The events of a batch (a JSON array of structured events)."""
    if not isinstance(value, list):
        raise EventInvalid(
            f"a CloudEvents batch is a JSON array of events, not {_json_kind(value)}",
            hint="send one event as application/cloudevents+json instead",
        )
    events = []
    for index, item in enumerate(value):
        try:
            events.append(structured_event(item))
        except EventInvalid as exc:
            raise EventInvalid(
                f"event {index} of the batch: {exc.message}", hint=exc.hint, attribute=exc.attribute
            ) from exc
    return events


def structured_event(value: Any) -> InboundEvent:
    """An event in the structured JSON format (already parsed from JSON)."""
    if not isinstance(value, dict):
        raise EventInvalid(
            f"a structured CloudEvent is a JSON object, not {_json_kind(value)}",
            hint='e.g. {"specversion": "1.0", "id": "...", "source": "...", "type": "..."}',
        )
    attributes = {k: v for k, v in value.items() if k not in ("data", "data_base64")}
    if "data" in value and "data_base64" in value:
        raise EventInvalid(
            "the event has both data and data_base64; send one",
            hint="data_base64 carries binary data, data everything else",
            attribute="data",
        )
    data: Any = value.get("data")
    if "data_base64" in value:
        encoded = value["data_base64"]
        try:
            data = base64.b64decode(str(encoded), validate=True)
        except ValueError as exc:
            raise EventInvalid(
                "data_base64 is not base64",
                hint="encode binary data with base64",
                attribute="data_base64",
            ) from exc
    return _checked(attributes, data, lambda name: f"attribute {name!r}")


def binary_event(headers: Mapping[str, str], body: bytes) -> InboundEvent:
    """An event in binary mode: attributes in ``ce-*`` headers, data in the body."""
    attributes: dict[str, Any] = {}
    for name, raw in headers.items():
        lowered = name.lower()
        if lowered.startswith("ce-"):
            attributes[lowered[3:]] = unquote(raw)
        elif lowered == "content-type":
            attributes["datacontenttype"] = raw
    data: Any = None
    if body:
        media = attributes.get("datacontenttype")
        if media is None or _JSON_MEDIA.match(str(media)):
            try:
                data = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise EventInvalid(
                    f"the data is declared JSON ({media or 'by default'}) but does not parse: "
                    f"{exc}",
                    hint="send JSON data, or set content-type to the data's media type",
                    attribute="data",
                ) from exc
        else:
            try:
                data = body.decode("utf-8") if media.startswith("text/") else bytes(body)
            except UnicodeDecodeError:
                data = bytes(body)
    return _checked(attributes, data, lambda name: f"header ce-{name}")


def _checked(attributes: dict[str, Any], data: Any, where: Any) -> InboundEvent:
    for name in REQUIRED:
        if name not in attributes or attributes[name] in (None, ""):
            raise EventInvalid(
                f"the CloudEvent has no {name} ({where(name)} is required by CloudEvents 1.0)",
                hint="every event needs id, source, specversion and type",
                attribute=name,
            )
    if attributes["specversion"] != "1.0":
        raise EventInvalid(
            f"specversion is {attributes['specversion']!r}; Accord accepts CloudEvents 1.0",
            hint='set "specversion": "1.0"',
            attribute="specversion",
        )
    for name in ("id", "source", "type"):
        value = attributes[name]
        if not isinstance(value, str):
            raise EventInvalid(
                f"{where(name)} must be a string, not {_json_kind(value)}",
                hint="CloudEvents attributes id, source and type are strings",
                attribute=name,
            )
        if len(value) > MAX_ATTRIBUTE:
            raise EventInvalid(
                f"{where(name)} has {len(value)} characters; at most {MAX_ATTRIBUTE} are accepted",
                hint="use a shorter identifier",
                attribute=name,
            )
    checked = dict(attributes)
    time = attributes.get("time")
    if time is not None:
        try:
            checked["time"] = datetime.fromisoformat(str(time))
        except ValueError as exc:
            raise EventInvalid(
                f"{where('time')} is {time!r}, not an RFC 3339 timestamp",
                hint="e.g. 2026-01-31T12:00:00Z",
                attribute="time",
            ) from exc
    try:
        CloudEvent(checked, data if isinstance(data, dict | str | bytes) else None)
    except CloudEventValidationError as exc:
        name = next(iter(exc.errors))
        problem = "; ".join(str(e) for e in exc.errors[name])
        raise EventInvalid(
            f"{where(name)} is invalid: {problem}",
            hint="extension attribute names are lower-case letters and digits",
            attribute=name,
        ) from exc
    extensions = {k: v for k, v in attributes.items() if k not in KNOWN}
    return InboundEvent(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        subject=attributes.get("subject"),
        time=None if time is None else str(time),
        datacontenttype=attributes.get("datacontenttype"),
        dataschema=attributes.get("dataschema"),
        data=data,
        extensions=extensions,
    )


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"
