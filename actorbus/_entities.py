"""The entity kinds of one system, and `EntityRef`: the way to one entity from anywhere.

`Entities` hosts kinds (`ActorSystem.shard`): it builds each kind's shard, registers
it as a top-level actor named after the kind, and hands the transport's `release` to
the shard of the group released. An `EntityRef` names an entity by kind and key; its
messages take the path the key's events take, so they keep their order with them:
without a transport, straight to the local shard; with one, as an APP envelope with the
key (``partitionkey``) and the kind's group (``togroup``: no other group or broadcast
subscriber takes it), which the transport carries to the owner of the key's partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._dispatch import TO_GROUP
from ._envelope import Envelope
from ._events import Scope
from ._keys import check_key
from ._message import Message
from ._ref import await_reply
from ._shard import Shard, ShardRegion
from ._sharding import kind_of
from ._transport import Transport
from ._wrap import adopt, wrap

if TYPE_CHECKING:
    from ._actors import Actors
    from ._message import Tracker
    from ._runtime import Runtime
    from ._sharding import EntityKind

__all__ = ["Entities", "EntityRef", "entity_kind", "entity_ref"]


def entity_kind(target: object) -> EntityKind:
    """The `EntityKind` of `target`.

    Raises:
        TypeError: If `target` is not an entity kind (an Actor class with `sharding`).
    """
    kind = kind_of(target)
    if kind is None:
        msg = (
            f"{target!r} is not an entity kind: give an Actor subclass the class attribute "
            "`sharding = Sharding(...)`"
        )
        raise TypeError(msg)
    return kind


class Entities:
    """The entity kinds hosted by one system, by class."""

    __slots__ = ("actors", "runtime", "shards")

    def __init__(self, runtime: Runtime, actors: Actors) -> None:
        self.runtime: Runtime = runtime
        self.actors: Actors = actors
        self.shards: dict[type[Any], ShardRegion] = {}

    async def host(self, cls: type[Any]) -> Shard:
        """Host the entity kind `cls` here (once: later calls return the same shard).

        Raises:
            TypeError: If `cls` is not an entity kind, its state class cannot be built
                with no arguments or saved as JSON, or it keeps state and the transport
                keeps none.
            ValueError: If an actor (or another kind) already runs under the kind's name.
        """
        kind = entity_kind(cls)
        region = self.shards.get(cls)
        if region is not None and not region.stopped:
            return Shard(region)
        transport = self.actors.transport
        if (
            kind.sharding.state is not None
            and transport is not None
            and type(transport).load_state is Transport.load_state
        ):
            msg = (
                f"entity kind {kind.name!r} keeps state, and {type(transport).__qualname__} "
                "keeps none: use a transport that does (RedisTransport, MemoryTransport) "
                "or Sharding(state=None)"
            )
            raise TypeError(msg)
        if kind.name in self.actors.by_name:
            msg = (
                f"cannot host entity kind {kind.cls.__qualname__}: an actor named "
                f"{kind.name!r} already runs in system {self.runtime.name!r}; give the kind "
                "another name with Sharding(name=...)"
            )
            raise ValueError(msg)
        assert self.actors.task_group is not None  # noqa: S101 - the system is running
        region = ShardRegion(
            self.runtime,
            self.actors,
            kind,
            transport=transport,
            task_group=self.actors.task_group,
        )
        self.actors.by_name[kind.name] = region
        await self.actors.start(region)
        self.shards[cls] = region
        if kind.passivates:
            self.actors.task_group.start_soon(region.sweep, name=f"actorbus sweep {kind.name}")
        return Shard(region)

    def local(self, kind: EntityKind) -> ShardRegion:
        """The running shard of `kind` here.

        Raises:
            LookupError: If this system does not host the kind.
        """
        region = self.shards.get(kind.cls)
        if region is None or not region.accepting:
            msg = (
                f"entity kind {kind.name!r} is not hosted by system {self.runtime.name!r}, "
                "which has no transport to reach another instance: host it first with "
                f"`await system.shard({kind.cls.__name__})` or ActorSystem(actors=[...])"
            )
            raise LookupError(msg)
        return region

    async def release(self, group: str, partitions: frozenset[int]) -> None:
        """Stop the entities of `partitions` of `group` (see `TransportHost.release`)."""
        for region in list(self.shards.values()):
            if region.kind.group == group and not region.stopped:
                await region.release(partitions)


class EntityRef:
    """The entity of one key of one kind, wherever it lives (`ActorSystem.entity`).

    It holds no reference to a live entity: each message finds the key's entity (or
    has it built) where the key's events go, so a ref stays valid across passivation,
    restarts and handovers, and a `tell` keeps its order with the key's events.

    Attributes:
        kind: The entity class.
        key: The entity's key.
    """

    __slots__ = ("_entities", "_kind", "key", "kind")

    def __init__(self, entities: Entities, kind: EntityKind, key: str) -> None:
        self._entities = entities
        self._kind = kind
        self.kind: type[Any] = kind.cls
        self.key: str = key

    def __repr__(self) -> str:
        return f"EntityRef({self._kind.name}, {self.key!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EntityRef)
            and other._entities is self._entities
            and other._kind is self._kind
            and other.key == self.key
        )

    def __hash__(self) -> int:
        return hash((self._kind.name, self.key))

    async def tell(self, message: object) -> None:
        """Send `message` to the entity (fire and forget), in order with the key's events.

        Without a transport it returns once the message is in the entity's mailbox
        (waiting while a BLOCK mailbox is full); with one, once the transport accepted
        it. A cancellation point.

        Raises:
            TypeError: If the kind has no handler for `message`, or (with a transport)
                `message` is not an `@event` object, an `Envelope` or plain data.
            LookupError: Without a transport, if this system does not host the kind.
            MailboxFull: If the entity's FAIL mailbox is full.
        """
        entities = self._entities
        await entities.runtime.checkpoint()
        transport = entities.actors.transport
        if transport is not None:
            await transport.publish(self._envelope(message))
            return
        item = self._message(message, None)
        await entities.local(self._kind).route(self.key).put(item)

    async def ask(self, message: object, timeout: float = 5.0) -> Any:
        """Send `message` and return the reply: the entity's first handler's return value.

        With a transport, the reply comes back as for `ActorSystem.request`.

        Raises:
            AskTimeout: If no reply came within `timeout` seconds.
            TypeError, LookupError: As for `tell`.
            Exception: Whatever the handler raised.
        """
        entities = self._entities
        await entities.runtime.checkpoint()
        transport = entities.actors.transport
        if transport is not None:
            return await transport.request(self._envelope(message), timeout)
        region = entities.local(self._kind)

        async def send(tracker: Tracker) -> None:
            await region.route(self.key).put(self._message(message, tracker))

        what = f"{type(message).__qualname__} (entity {self.key!r})"
        return await await_reply(f"{self._kind.name}/{self.key}", what, timeout, send)

    def _check(self, cls: type[Any] | None, type_: str) -> None:
        if not self._kind.table.match(cls, type_):
            accepted = (
                ", ".join(s for spec in self._kind.table.specs for s in spec.subscriptions())
                or "nothing"
            )
            msg = (
                f"entity kind {self._kind.name!r} has no handler for {type_!r}; it handles: "
                f"{accepted}"
            )
            raise TypeError(msg)

    def _message(self, message: object, tracker: Tracker | None) -> Message:
        """The mailbox message for a local send."""
        if isinstance(message, Envelope):
            envelope, payload, cls = adopt(message, self._entities.runtime.name)
            self._check(cls, envelope.type)
            return Message(payload, envelope, cls, envelope.type, self._kind.group, tracker)
        cls = type(message)
        type_, specs = self._kind.table.for_tell(cls)
        self._check(cls, type_)
        return Message(message, None, cls, type_, self._kind.group, tracker, specs)

    def _envelope(self, message: object) -> Envelope:
        """The APP envelope that carries `message` to the entity through the transport."""
        envelope, _, cls = wrap(
            message,
            self._entities.runtime.name,
            Scope.APP,
            headers={TO_GROUP: self._kind.group},
            key=self.key,
        )
        self._check(cls, envelope.type)
        return envelope


def entity_ref(entities: Entities, cls: type[Any], key: object) -> EntityRef:
    """The `EntityRef` of `key` of kind `cls` (see `ActorSystem.entity`).

    Raises:
        TypeError: If `cls` is not an entity kind, or `key` is not a string.
        ValueError: If `key` is empty or too long.
    """
    return EntityRef(entities, entity_kind(cls), check_key(key, "the entity's key"))
