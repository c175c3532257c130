"""The Redis part of the AsyncAPI document: the server, its streams and their entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ._declared import PARTITION_PARAMETER

if TYPE_CHECKING:
    from ._declared import Layout, Server
    from ._jsonschema import SchemaBuilder

__all__ = ["RedisStreams"]

_DEAD: Final = "deadLetters"
_REPLIES: Final = "replies"
_SERVER: Final = "redis"

_DEAD_LETTER_ENTRY: Final[dict[str, Any]] = {
    "type": "object",
    "title": "Dead-letter entry",
    "description": (
        "A Redis stream entry (field-value pairs, all strings) of the dead-letter stream. "
        "See the Redis guide (Crashes, claiming and dead letters) for every field."
    ),
    "properties": {
        "e": {
            "type": "string",
            "description": (
                "The entry as read from the events stream: the event's CloudEvents JSON "
                "(search it for the event's id)."
            ),
        },
        "error": {"type": "string", "description": "Why it was dead-lettered."},
        "group": {"type": "string", "description": "The consumer group that gave up."},
        "deliveries": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "How many times it was delivered.",
        },
        "entry": {
            "type": "string",
            "pattern": "^[0-9]+-[0-9]+$",
            "description": "Its id in the events stream.",
        },
        "instance": {"type": "string", "description": "The instance that dead-lettered it."},
    },
    "additionalProperties": {"type": "string"},
}

_REPLY_ENTRY: Final[dict[str, Any]] = {
    "type": "object",
    "title": "Reply entry",
    "description": (
        "A Redis stream entry (field-value pairs, all strings) of a requester's reply stream. "
        "The first reply to a request wins; later ones are ignored."
    ),
    "required": ["id", "ok", "instance"],
    "properties": {
        "id": {"type": "string", "description": "The id of the request it answers."},
        "ok": {
            "type": "string",
            "enum": ["1", "0"],
            "description": "`1`: the handler returned `value`; `0`: it raised `error`.",
        },
        "value": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The handler's return value as JSON text (when `ok` is `1`).",
        },
        "error": {
            "type": "string",
            "description": "The exception's type and message (when `ok` is `0`).",
        },
        "instance": {"type": "string", "description": "The instance that answered."},
    },
    "additionalProperties": {"type": "string"},
}


class RedisStreams:
    """Describes the streams of a Redis transport (see the Redis guide for their keys).

    Args:
        layout: The transport's key layout and settings (a Redis one).
        schemas: Where shared schemas go.
        messages: The document's message components, which this adds to.
    """

    def __init__(
        self, layout: Layout, schemas: SchemaBuilder, messages: dict[str, dict[str, Any]]
    ) -> None:
        self.layout = layout
        self.schemas = schemas
        self.messages = messages
        self.replies: dict[str, Any] | None = None

    @property
    def server(self) -> Server:
        """The Redis server (a Redis layout always has one)."""
        assert self.layout.server is not None  # noqa: S101 - see the docstring
        return self.layout.server

    def summary(self) -> str:
        """A sentence for the document's description."""
        tls = " over TLS" if self.server.scheme == "rediss" else ""
        return (
            f"APP-scope events travel through Redis Streams on `{self.server.host}`{tls} "
            f"(database {self.server.database}), at least once: an entry is acknowledged "
            "once its handlers finished."
        )

    def servers(self) -> dict[str, Any]:
        """The document's ``servers``: one Redis server (never a credential)."""
        server = self.server
        found: dict[str, Any] = {"host": server.host, "protocol": "redis"}
        if server.path is not None:
            found["pathname"] = server.path
        where = f"the Unix socket `{server.path}`" if server.path is not None else server.host
        found["title"] = "Redis"
        found["description"] = (
            f"Redis (Streams) at {where}, database {server.database}"
            f"{', over TLS (rediss://)' if server.scheme == 'rediss' else ''}."
        )
        if server.authenticated:
            found["security"] = [{"$ref": "#/components/securitySchemes/redisAuth"}]
        found["x-actorbus-database"] = server.database
        found["x-actorbus-tls"] = server.scheme == "rediss"
        return {_SERVER: found}

    def security_schemes(self) -> dict[str, Any]:
        """``redisAuth`` when the transport's URL carries a password."""
        if not self.server.authenticated:
            return {}
        return {
            "redisAuth": {
                "type": "userPassword",
                "description": (
                    "Redis AUTH with the user name and password of the transport's URL "
                    "(not written here)."
                ),
            }
        }

    def consumer_group(self, group: str | None) -> str:
        """The consumer group of the events stream that a subscriber reads through."""
        template = self.layout.broadcast_group if group is None else self.layout.member_group
        assert template is not None  # noqa: S101 - a Redis layout names both
        return template if group is None else template.replace("{group}", group)

    def events_channel(self) -> dict[str, Any]:
        """The APP events stream (its messages are added by the caller)."""
        settings = self.layout.settings
        trimmed = (
            f"capped at about {settings['maxlen']} entries"
            if settings.get("maxlen")
            else "trimmed below what every consumer group still needs"
        )
        description = (
            "Every APP event of the application, one stream entry each, with two fields: "
            "`e`, the event as CloudEvents JSON (structured mode: the message headers are "
            "its attributes and the payload is its `data`), and `t`, its type. An entry is "
            f"acknowledged once its handlers finished; one left pending by a silent consumer "
            f"is claimed after {settings.get('claim_after'):g} s by a live member of its group, "
            f"and one delivered {settings.get('max_deliveries')} times goes to the "
            f"dead-letter stream. The stream is {trimmed}."
        )
        channel: dict[str, Any] = {"address": self.layout.events, "title": "APP events"}
        partitions = self.layout.partitions
        if partitions > 1:
            description += self._partitions_text(partitions)
        channel["description"] = description
        if partitions > 1:
            channel["parameters"] = {PARTITION_PARAMETER: self._partition_parameter()}
            channel["x-actorbus-partitions"] = partitions
        channel["servers"] = [{"$ref": f"#/servers/{_SERVER}"}]
        channel["x-actorbus-scope"] = "app"
        channel["x-actorbus-stream-fields"] = {
            "e": "the event as CloudEvents JSON",
            "t": "the event type",
        }
        return channel

    def _partitions_text(self, partitions: int) -> str:
        lease = float(self.layout.settings["lease"])
        return (
            f" It is split into {partitions} partition streams, one per value of "
            f"`{{{PARTITION_PARAMETER}}}`: an event with a key (the `partitionkey` "
            f"attribute) goes to partition CRC-32(key) mod {partitions} (the CRC-32 of its "
            "UTF-8 bytes, as zlib computes it), an event without one to each in turn. Each "
            "partition of a consumer group (`g:…`) is read by one live member at a time, "
            f"which holds the partition's lease (renewed every {lease / 3:.3g} s, taken over "
            f"{lease:g} s after its holder went silent), so a group handles the events of "
            "one key in order; broadcast groups (`b:…`) read every partition. The "
            "partition's leases, fencing counters and entity states share its hash tag "
            "but are not streams: they are not channels here (the scaling guide lists "
            "them)."
        )

    def _partition_parameter(self) -> dict[str, Any]:
        tags = list(self.layout.partition_tags)
        return {
            "description": (
                "The partition's Redis Cluster hash tag, braces included (they are part "
                "of the stream's key): the values are listed in partition order, so "
                "partition p's stream is the address with the p-th value."
            ),
            "enum": tags,
            "examples": tags[:1],
        }

    def dead_letter_channel(self) -> dict[str, Any]:
        """The dead-letter stream, with its one message."""
        key = "actorbus.deadLetter"
        self.messages[key] = {
            "name": "dead letter",
            "title": "Dead letter",
            "summary": "An APP event that was given up on, with the reason.",
            "description": (
                "Added when supervision dead-letters an APP event, when an entry was "
                f"delivered {self.layout.settings.get('max_deliveries')} times without being "
                "acknowledged, and for entries that cannot be read (not JSON, too large, "
                "not a CloudEvent, data that does not fit its class)."
            ),
            "payload": self.schemas.add("actorbus.DeadLetterEntry", _DEAD_LETTER_ENTRY),
        }
        dead_maxlen = self.layout.settings.get("dead_maxlen")
        capped = f"capped at about {dead_maxlen} entries" if dead_maxlen else "not capped"
        return {
            _DEAD: {
                "address": self.layout.dead,
                "title": "Dead letters",
                "description": f"The application's dead-letter stream ({capped}).",
                "servers": [{"$ref": f"#/servers/{_SERVER}"}],
                "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            }
        }

    def dead_letter_operation(self) -> dict[str, Any]:
        """The instance's writes to the dead-letter stream."""
        return {
            "actorbus.deadLetters": {
                "action": "send",
                "channel": {"$ref": f"#/channels/{_DEAD}"},
                "title": "Dead-letter APP events",
                "description": (
                    "Every instance adds the APP events it gives up on to the dead-letter "
                    "stream, then acknowledges them."
                ),
                "messages": [{"$ref": f"#/channels/{_DEAD}/messages/actorbus.deadLetter"}],
            }
        }

    def reply(self, key: str, value: dict[str, Any], handler: str) -> dict[str, Any]:
        """The reply of a handler to requests across instances, on the reply streams."""
        channel = self.replies
        if channel is None:
            channel = self.replies = {
                "address": self.layout.replies,
                "title": "Replies",
                "description": (
                    "One stream per requesting instance: the replies to its "
                    "`system.request` calls (it expires an hour after the last one)."
                ),
                "parameters": {
                    "instance": {
                        "description": (
                            "The requesting instance's name: the request's `replyto` attribute."
                        )
                    }
                },
                "servers": [{"$ref": f"#/servers/{_SERVER}"}],
                "messages": {},
            }
        entry = self.schemas.add("actorbus.ReplyEntry", _REPLY_ENTRY)
        self.messages[key] = {
            "name": f"{handler} reply",
            "title": f"The reply of {handler}",
            "summary": "A reply entry whose `value` is the handler's return value as JSON.",
            "payload": {
                "allOf": [entry],
                "properties": {
                    "value": {
                        "description": "JSON text of the value described by `x-actorbus-value`.",
                        "x-actorbus-value": value,
                    }
                },
            },
        }
        channel["messages"][key] = {"$ref": f"#/components/messages/{key}"}
        return {
            "address": {
                "description": (
                    "The stream `replies:{replyto}` of the application, where `replyto` is "
                    "the request's attribute naming the waiting instance."
                ),
                "location": "$message.header#/replyto",
            },
            "channel": {"$ref": f"#/channels/{_REPLIES}"},
            "messages": [{"$ref": f"#/channels/{_REPLIES}/messages/{key}"}],
        }

    def channels(self) -> dict[str, Any]:
        """The dead-letter stream, and the reply streams when some handler replies."""
        found = self.dead_letter_channel()
        if self.replies is not None:
            found[_REPLIES] = self.replies
        return found
