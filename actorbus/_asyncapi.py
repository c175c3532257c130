"""`asyncapi`: an AsyncAPI 3.0 document of an application, built without running it.

Channels are the streams the application uses (the APP events stream, the dead-letter
stream and the reply streams of a Redis transport) and the in-process bus of PROCESS
events; each `@event` type is a message whose headers are the CloudEvents attributes and
whose payload is its data; each handler of the declared actors and routers is a
``receive`` operation. `docs/guides/asyncapi.md` describes the document.
"""

from __future__ import annotations

import math
import typing
import urllib.parse
from typing import Any, Final

import attrs

from ._asyncapi_cloudevents import ADHOC, ANY_DATA, cloudevent_attributes, message_headers
from ._asyncapi_delivery import delivery_text
from ._asyncapi_redis import RedisStreams
from ._declared import NOT_ANNOTATED, Layout, Subscription, layout, subscriptions
from ._docstrings import docstring_summary
from ._events import Scope, event_info, registered, type_name
from ._jsonschema import SchemaBuilder
from ._system import ActorSystem
from ._version import __version__

__all__ = ["asyncapi"]

_NO_REPLY: Final = (None, type(None))
_EVENTS: Final = "events"
_PROCESS: Final = "process"


@attrs.frozen
class _Event:
    """A kind of event the application can receive, and where it travels."""

    name: str
    cls: type[Any] | None
    channels: tuple[str, ...]


def asyncapi(
    system: ActorSystem, *, version: str = "unversioned", description: str | None = None
) -> dict[str, Any]:
    """Describe `system` as an AsyncAPI 3.0 document (a JSON-ready dict).

    Nothing is started or connected: the document is read from what the system declares
    — its start-up `actors` and `routers` (not actors spawned while it runs), every
    `@event` type registered in the process, and its transport's settings. Each event
    type is a message with a JSON Schema of its data; each handler is a ``receive``
    operation (broadcast or group) on the channel its events travel on. What has no exact
    JSON Schema is marked with ``x-actorbus-unsupported`` rather than guessed.

    Args:
        system: The application, as built (not started).
        version: The application's version (the document's ``info.version``).
        description: Text put first in ``info.description``.

    Raises:
        TypeError: If `system` is not an `ActorSystem`.
    """
    if not isinstance(system, ActorSystem):
        msg = f"asyncapi() describes an ActorSystem, got {system!r}"
        raise TypeError(msg)
    return _Document(system, version, description).build()


class _Document:
    def __init__(self, system: ActorSystem, version: str, description: str | None) -> None:
        self.system = system
        self.version = version
        self.description = description
        self.layout: Layout = layout(system)
        self.subscriptions = subscriptions(system)
        self.schemas = SchemaBuilder()
        self.headers = self.schemas.add("actorbus.CloudEvent", cloudevent_attributes())
        self.messages: dict[str, dict[str, Any]] = {}
        self.streams = (
            RedisStreams(self.layout, self.schemas, self.messages)
            if self.layout.server is not None
            else None
        )
        self.message_keys: dict[tuple[str, type[Any] | None], str] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: set[str] = set()

    # -- the whole -----------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        events = self._events()
        self._channels(events)
        for subscription in self.subscriptions:
            self._operations(subscription, events)
        if self.streams is not None:
            self.channels.update(self.streams.channels())
            self.operations.update(self.streams.dead_letter_operation())
        for key in self.requests:
            self.messages[key]["correlationId"] = {
                "description": (
                    "A reply names the request by its id (the `id` field of a reply entry, "
                    "or the `ask`/`request` that waits for it)."
                ),
                "location": "$message.header#/id",
            }
        document: dict[str, Any] = {
            "asyncapi": "3.0.0",
            "id": f"urn:actorbus:app:{urllib.parse.quote(self.system.name, safe='')}",
            "info": self._info(),
        }
        if self.streams is not None:
            document["servers"] = self.streams.servers()
        document["channels"] = self.channels
        document["operations"] = self.operations
        components: dict[str, Any] = {"messages": self.messages, "schemas": self.schemas.components}
        if self.streams is not None and (schemes := self.streams.security_schemes()):
            components["securitySchemes"] = schemes
        document["components"] = components
        ordered: dict[str, Any] = _extensions_last(document)
        return ordered

    def _info(self) -> dict[str, Any]:
        lines = [self.description] if self.description else []
        transport = self.layout.transport
        if transport is None:
            lines.append(
                "A PROCESS-only application: it has no transport, so every event, APP scope "
                "included, stays inside the one process that runs it."
            )
        elif self.streams is not None:
            lines.append(self.streams.summary())
        else:
            lines.append(
                f"APP-scope events travel through a `{transport}`, whose addresses this "
                "document does not know."
            )
        lines.append(
            f"Generated by actorbus {__version__} from `ActorSystem({self.system.name!r})`: its "
            "start-up actors and routers, and the `@event` types registered in the process. "
            "Actors spawned while the system runs are not listed."
        )
        return {
            "title": self.system.name,
            "version": self.version,
            "description": "\n\n".join(lines),
            "x-actorbus-transport": transport,
        }

    # -- events and messages ---------------------------------------------------------------

    def _events(self) -> list[_Event]:
        """Every event type the application may receive, with the channels it uses."""
        found: dict[tuple[str, type[Any] | None], _Event] = {}

        def add(type_: str, cls: type[Any] | None, scope: Scope | None) -> None:
            if (type_, cls) not in found:
                channels = (_EVENTS, _PROCESS) if scope is None else (_channel_of(scope),)
                found[type_, cls] = _Event(type_, cls, channels)

        for type_, cls in registered().items():
            info = event_info(cls)
            ours = cls.__module__ == "actorbus" or cls.__module__.startswith("actorbus.")
            # actorbus's own records (SystemStarted, DeadLetter...) only when handled.
            if info is not None and (not ours or self._handled(cls, type_)):
                add(type_, cls, info.scope)
        for subscription in self.subscriptions:
            for cls in subscription.classes:
                if event_info(cls) is None:  # a plain class, published in-process
                    add(type_name(cls), cls, Scope.PROCESS)
            for type_ in subscription.types:
                if not any(e.name == type_ for e in found.values()):
                    add(type_, None, None)  # emitted ad hoc, or from another program
        return sorted(found.values(), key=lambda e: (e.name, e.cls is None))

    def _handled(self, cls: type[Any], type_: str) -> bool:
        return any(s.matches(cls, type_) for s in self.subscriptions if s.classes or s.types)

    def _message(self, event: _Event) -> str:
        key = self.message_keys.get((event.name, event.cls))
        if key is not None:
            return key
        key = _unique(event.name, self.messages)
        self.message_keys[event.name, event.cls] = key
        message: dict[str, Any] = {"name": event.name}
        cls = event.cls
        if cls is not None:
            message["title"] = cls.__name__
            summary, rest = docstring_summary(cls)
            if summary:
                message["summary"] = summary
            if rest:
                message["description"] = rest
        message["contentType"] = "application/json"
        message["headers"] = message_headers(self.headers, event.name)
        message["payload"] = self._payload(event)
        if cls is not None:
            message["x-actorbus-class"] = _class_path(cls)
        if cls is not None:
            info = event_info(cls)
            message["x-actorbus-scope"] = info.scope.value if info is not None else "process"
        self.messages[key] = message
        return key

    def _payload(self, event: _Event) -> dict[str, Any]:
        if event.cls is None:
            spread = [s for s in self.subscriptions if event.name in s.types]
            if spread and all(s.spreads for s in spread):
                return self.schemas.add("actorbus.AdHocArguments", ADHOC)
            return dict(ANY_DATA)
        return self.schemas.of(event.cls, event.name)

    def _other_message(self) -> str:
        key = "actorbus.unregistered"
        if key not in self.messages:
            self.messages[key] = {
                "name": "unregistered",
                "title": "An event of an unregistered type",
                "summary": "An event whose type no @event class in this process registers.",
                "description": (
                    "Glob subscriptions also match event types that no `@event` class "
                    "registers (events of other programs, or emitted ad hoc): the handler "
                    "receives them as an `Envelope` whose data is plain JSON."
                ),
                "contentType": "application/json",
                "headers": {"$ref": self.headers["$ref"]},
                "payload": dict(ANY_DATA),
            }
        return key

    # -- channels --------------------------------------------------------------------------

    def _channels(self, events: list[_Event]) -> None:
        # The events stream is used with a transport, or when some type is APP-scope; the
        # in-process bus by every other event (a glob may match events of either).
        wanted: set[str] = set()
        if self.layout.transport is not None or any(e.channels == (_EVENTS,) for e in events):
            wanted.add(_EVENTS)
        if any(_PROCESS in e.channels for e in events) or any(s.globs for s in self.subscriptions):
            wanted.add(_PROCESS)
        if _EVENTS in wanted:
            channel = self._events_channel()
            channel["messages"] = self._channel_messages(events, _EVENTS)
            self.channels[_EVENTS] = channel
        if _PROCESS in wanted:
            self.channels[_PROCESS] = {
                "address": None,
                "title": "PROCESS events",
                "description": (
                    "Events published with PROCESS scope: they reach the actors of the "
                    "publishing process only and are never written anywhere (an in-memory "
                    "bus, no address)."
                ),
                "messages": self._channel_messages(events, _PROCESS),
                "x-actorbus-scope": "process",
            }

    def _events_channel(self) -> dict[str, Any]:
        if self.streams is not None:
            return self.streams.events_channel()
        where = (
            "no transport: they stay in this process"
            if self.layout.transport is None
            else f"carried by `{self.layout.transport}`"
        )
        return {
            "address": None,
            "title": "APP events",
            "description": f"Events published with APP scope ({where}).",
            "x-actorbus-scope": "app",
        }

    def _channel_messages(self, events: list[_Event], channel: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for event in events:
            if channel in event.channels:
                key = self._message(event)
                found[key] = {"$ref": f"#/components/messages/{key}"}
        return found

    # -- operations ------------------------------------------------------------------------

    def _operations(self, subscription: Subscription, events: list[_Event]) -> None:
        per_channel: list[tuple[str, list[str]]] = []
        for channel in (_EVENTS, _PROCESS):
            if channel not in self.channels:
                continue
            keys = [
                self._message(e)
                for e in events
                if channel in e.channels
                and (subscription.matches(e.cls, e.name) or e.name in subscription.types)
            ]
            if subscription.globs:
                key = self._other_message()
                self.channels[channel]["messages"][key] = {"$ref": f"#/components/messages/{key}"}
                keys.append(key)
            if keys:
                per_channel.append((channel, keys))
        for channel, keys in per_channel:
            name = subscription.handler
            if len(per_channel) > 1:
                name = f"{name}.{channel}"
            operation_key = _unique(name, self.operations)
            self.operations[operation_key] = self._operation(
                subscription, channel, keys, operation_key
            )

    def _operation(
        self, subscription: Subscription, channel: str, keys: list[str], operation_key: str
    ) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "title": subscription.handler,
        }
        summary, _ = docstring_summary(subscription.func)
        if summary:
            operation["summary"] = summary
        operation["description"] = self._delivery_text(subscription, channel)
        operation["messages"] = [{"$ref": f"#/channels/{channel}/messages/{k}"} for k in keys]
        group = subscription.group
        operation["tags"] = [{"name": f"group:{group}" if group is not None else "broadcast"}]
        reply = self._reply(subscription, channel, keys, operation_key)
        if reply is not None:
            operation["reply"] = reply
        operation["x-actorbus-actor"] = subscription.actor
        operation["x-actorbus-handler"] = subscription.handler
        operation["x-actorbus-subscriptions"] = [
            *(type_name(c) for c in subscription.classes),
            *subscription.types,
            *subscription.globs,
        ]
        operation["x-actorbus-delivery"] = "group" if group is not None else "broadcast"
        if group is not None:
            operation["x-actorbus-group"] = group
        if channel == _EVENTS and self.streams is not None:
            operation["x-actorbus-consumer-group"] = self.streams.consumer_group(group)
        entity = subscription.entity
        if entity is not None:
            state = entity.state
            operation["x-actorbus-entity"] = {
                "kind": entity.kind,
                "class": _class_path(entity.cls),
                "state": None if state is None else self.schemas.of(state, entity.kind),
                "passivateAfter": None
                if math.isinf(entity.passivate_after)
                else entity.passivate_after,
            }
        return operation

    def _delivery_text(self, subscription: Subscription, channel: str) -> str:
        on_events = channel == _EVENTS
        return delivery_text(
            subscription,
            across=on_events and self.layout.transport is not None,
            consumer_group=self.streams.consumer_group(subscription.group)
            if on_events and self.streams is not None
            else None,
            partitions=self.layout.partitions,
        )

    def _reply(
        self, subscription: Subscription, channel: str, keys: list[str], operation_key: str
    ) -> dict[str, Any] | None:
        returns = subscription.returns
        if returns is NOT_ANNOTATED or returns in _NO_REPLY:
            return None
        self.requests.update(k for k in keys if k != "actorbus.unregistered")
        value = self.schemas.of(returns, f"the return value of {subscription.handler}")
        if channel == _EVENTS and self.streams is not None:
            return self.streams.reply(f"{operation_key}.reply", value, subscription.handler)
        key = _unique(f"{operation_key}.reply", self.messages)
        self.messages[key] = {
            "name": f"{subscription.handler} reply",
            "title": f"The return value of {subscription.handler}",
            "summary": "What `ask` (or a `request` answered in the process) receives.",
            "description": (
                "The handler's return value is the reply, handed to the asker in the "
                "process: no message is written anywhere."
            ),
            "payload": value,
        }
        return {"messages": [{"$ref": f"#/components/messages/{key}"}]}


def _extensions_last(value: Any) -> Any:
    """`value` with the ``x-`` keys of every object after the standard ones (for readers)."""
    if isinstance(value, dict):
        mapping = typing.cast("dict[str, Any]", value)
        keys = sorted(mapping, key=lambda key: key.startswith("x-"))
        return {key: _extensions_last(mapping[key]) for key in keys}
    if isinstance(value, list):
        return [_extensions_last(item) for item in typing.cast("list[Any]", value)]
    return value


def _class_path(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _channel_of(scope: Scope) -> str:
    return _EVENTS if scope is Scope.APP else _PROCESS


def _unique(wanted: str, taken: dict[str, Any]) -> str:
    """`wanted` as a valid AsyncAPI component key, not yet in `taken`."""
    base = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in wanted)
    key, number = base or "message", 1
    while key in taken:
        number += 1
        key = f"{base}-{number}"
    return key
