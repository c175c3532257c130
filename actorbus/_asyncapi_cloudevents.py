"""The schemas of the CloudEvents envelope, shared by every message of the AsyncAPI document."""

from __future__ import annotations

from typing import Any, Final

from ._dispatch import REPLY_TO, TO_GROUP
from ._keys import PARTITION_KEY

__all__ = ["ADHOC", "ANY_DATA", "cloudevent_attributes", "message_headers"]

ANY_DATA: Final[dict[str, Any]] = {
    "description": "Any JSON data: no `@event` class in the process registers this type."
}

ADHOC: Final[dict[str, Any]] = {
    "type": "object",
    "title": "Ad-hoc event arguments",
    "description": (
        "The data of an event published with `system.emit(type, *args, **kwargs)` for a type "
        "no `@event` class registers: its positional and keyword arguments. A function "
        "subscriber whose parameters carry no event annotation is called as "
        "`fn(*args, **kwargs)`."
    ),
    "required": ["args", "kwargs"],
    "properties": {
        "args": {"type": "array", "description": "The positional arguments."},
        "kwargs": {"type": "object", "description": "The keyword arguments."},
    },
    "additionalProperties": False,
}


def cloudevent_attributes() -> dict[str, Any]:
    """The CloudEvents 1.0 attributes of an event, as actorbus writes and reads them."""
    return {
        "type": "object",
        "title": "CloudEvents attributes",
        "description": (
            "The CloudEvents 1.0 context attributes and extension attributes of the event. "
            "On the wire, the event is CloudEvents JSON in structured mode: these attributes "
            "are its top-level members, and the message payload is its `data` (bytes travel "
            "as `data_base64`)."
        ),
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {
                "type": "string",
                "minLength": 1,
                "description": (
                    "Unique per event and the same on every delivery of it: the key to make "
                    "handlers idempotent."
                ),
            },
            "source": {
                "type": "string",
                "minLength": 1,
                "description": "Who published the event; by default the application's name.",
            },
            "type": {"type": "string", "minLength": 1, "description": "The event type."},
            "time": {
                "type": "string",
                "format": "date-time",
                "description": (
                    "When it was published (UTC). Optional: actorbus sets it on every event "
                    "it publishes, but an event from another producer may have none, and "
                    "it is then read without one (never invented)."
                ),
            },
            "datacontenttype": {
                "type": "string",
                "default": "application/json",
                "description": (
                    "The media type of the data: `application/json` for JSON data (the "
                    "default when absent); for bytes data, which travels as `data_base64`, "
                    "`application/octet-stream` unless the publisher set another type."
                ),
            },
            "subject": {"type": "string", "description": "Optional subject of the event."},
            "scope": {
                "type": "string",
                "enum": ["app", "process"],
                "default": "app",
                "description": (
                    "actorbus extension: `app` events reach every instance of the "
                    "application, `process` events only the publishing process. An event "
                    "without it is an APP event."
                ),
            },
            "traceparent": {
                "type": "string",
                "description": "W3C Trace Context of the publisher (distributed tracing).",
            },
            REPLY_TO: {
                "type": "string",
                "description": (
                    "On a request across instances (`system.request`): the name of the "
                    "instance waiting for the reply."
                ),
            },
            PARTITION_KEY: {
                "type": "string",
                "minLength": 1,
                "maxLength": 1024,
                "description": (
                    "The event's key (the CloudEvents Partitioning extension): what it is "
                    "about, an order or an account. With partitions, it chooses the "
                    "event's partition stream, so every group handles the events of one "
                    "key in order; an entity kind gives the event to the entity of this key."
                ),
            },
            TO_GROUP: {
                "type": "string",
                "minLength": 1,
                "description": (
                    "actorbus extension: only this consumer group handles the event; other "
                    "groups and broadcast subscribers skip it. A message sent with "
                    "`system.entity(Kind, key)` carries its kind's group, `entity:<kind>`, "
                    "and its key in `partitionkey`."
                ),
            },
        },
        "propertyNames": {"pattern": "^[a-z0-9]{1,64}$"},
        "additionalProperties": {
            "type": "string",
            "description": (
                "Other extension attributes: the envelope's headers (lower-case letters and "
                "digits)."
            ),
        },
    }


def message_headers(attributes: dict[str, str], type_: str) -> dict[str, Any]:
    """The headers of the messages of one event type: the attributes, with that type."""
    return {
        "type": "object",
        "allOf": [attributes, {"properties": {"type": {"const": type_}}}],
    }
