"""The shard: an entity kind hosted by this instance, and the entities it holds.

A `ShardRegion` (the name Akka gives the same part) is the cell of a hosted kind: it
subscribes with the kind's handlers as the member of the kind's group, so the dispatcher
routes the kind's events here, and instead of taking them in its own mailbox it
forwards each one to the entity of its key (`Cell.forward`), building that entity first
when it has none live. It is the parent of its entities in the supervision tree, and
the host of their cells: it hears when one stops (its state bytes are kept, the
counters added to the kind's). One task sweeps the idle entities away, in order of
their last message, and `release` stops the entities of partitions this instance no
longer owns.

One live entity per key: an entity that is stopping (passivated, stopped by its
supervision, released) stays known as the key's predecessor until it has stopped, and a
new entity of the key waits for it before it is built.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any, Final

import anyio

from ._cell import Cell
from ._entity import EntityCell, NoEntity
from ._exceptions import ActorbusError, ActorStopped, DecodeError
from ._keys import partition_of
from ._mailbox import Mailbox
from ._records import ShardStats
from ._state import StateCodec, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ._cell import CellHost, Spawn
    from ._runtime import Runtime
    from ._sharding import EntityKind
    from ._transport import Transport

__all__ = ["CACHED_STATES", "Shard", "ShardRegion"]

logger: Final = logging.getLogger("actorbus.entity")

CACHED_STATES: Final = 10_000
"""With a transport, the states of this many keys passivated last are kept in memory."""

_COUNTERS: Final = (
    "processed",
    "failed",
    "retries",
    "restarts",
    "dropped",
    "dead_lettered",
    "handling_time",
)


class ShardRegion(Cell):
    """The cell of an entity kind hosted here: it routes each key to its entity."""

    __slots__ = (
        "activations",
        "clock",
        "entities",
        "kind",
        "passivations",
        "retired",
        "retiring",
        "store",
        "sweeping",
        "task_group",
        "transport",
        "wake",
    )

    def __init__(
        self,
        runtime: Runtime,
        actors: CellHost,
        kind: EntityKind,
        *,
        transport: Transport | None,
        task_group: TaskGroup,
    ) -> None:
        state = kind.sharding.state
        codec = None if state is None else StateCodec(kind.name, state)
        super().__init__(
            runtime,
            _ShardHost(self, actors, codec),
            kind.name,
            factory=None,
            args=(),
            kwargs={},
            table=kind.table,
            mailbox=Mailbox(),  # only its entities' escalations come here
            supervision=kind.shard_supervision,
            group=kind.group,
            parent=None,
        )
        self.forward: Callable[[str | None], Cell] | None = self.route
        self.kind: EntityKind = kind
        self.transport: Transport | None = transport
        self.task_group: TaskGroup = task_group
        self.store: StateStore = StateStore(None if transport is None else CACHED_STATES)
        self.clock: Callable[[], float] = runtime.backend.clock
        self.entities: collections.OrderedDict[str, EntityCell] = collections.OrderedDict()
        """The live (or starting) entity of each key, least recently routed to first."""
        self.retiring: dict[str, EntityCell] = {}
        """Entities that are stopping, by key: the predecessor of the key's next entity."""
        self.activations: int = 0
        self.passivations: int = 0
        self.retired: dict[str, float] = dict.fromkeys(_COUNTERS, 0)
        """The counters of the entities that have stopped, added up."""
        self.sweeping: anyio.CancelScope | None = None
        self.wake: anyio.Event | None = None

    # -- routing ------------------------------------------------------------------------------

    def route(self, key: str | None) -> Cell:
        """The cell that takes a message for `key`: its live entity, or a new one.

        Never waits and never raises: a message that no entity may take here goes to a
        cell that dead-letters it (no key), or leaves a transport's delivery for the
        owner of the key's partition.
        """
        if key is not None:
            entity = self.entities.get(key)
            if entity is not None and not entity.queue.closed:
                entity.touched = self.clock()
                self.entities.move_to_end(key)
                return entity
            if not self.queue.closed:
                return self._activate(key, entity)
            stopped = ActorStopped(
                f"entity kind {self.kind.name!r} is stopping here: the message is left for "
                "a later delivery"
            )
            return self._refuse(key, stopped, dead=False)
        error = DecodeError(
            f"a message for entity kind {self.kind.name!r} has no key: give its event class "
            "@event(key=...), publish it with key=..., or send it with "
            f"system.entity({self.kind.cls.__name__}, key)"
        )
        return self._refuse(None, error, dead=True)

    def _refuse(self, key: str | None, error: Exception, *, dead: bool) -> Cell:
        """A cell that takes the messages no entity may take here, and refuses them."""
        refusing = EntityCell(
            self.runtime, self.entity_host, self.kind, key, parent=self, refusal=(error, dead)
        )
        return self._start(refusing)

    def _activate(self, key: str, stopping: EntityCell | None) -> Cell:
        if stopping is not None:  # stopped by its supervision: it is the predecessor now
            del self.entities[key]
            self.retiring[key] = stopping
        if not self.owns(key):
            error = ActorbusError(
                f"entity {self.kind.name}/{key}: partition {self.partition(key)} of its key "
                "is owned by another instance, so its entity cannot live here; a message "
                "routed locally (a PROCESS-scope event) does not reach it: publish with "
                f"scope=Scope.APP, or send with system.entity({self.kind.cls.__name__}, key)"
            )
            return self._refuse(key, error, dead=True)
        entity = EntityCell(
            self.runtime,
            self.entity_host,
            self.kind,
            key,
            parent=self,
            predecessor=self.retiring.get(key),
            touched=self.clock(),
        )
        self.entities[key] = entity
        self.activations += 1
        if self.wake is not None:
            self.wake.set()
            self.wake = None
        return self._start(entity)

    def _start(self, entity: EntityCell) -> EntityCell:
        self.children[entity] = None
        self.task_group.start_soon(self._run, entity, name=f"actorbus entity {entity.name}")
        return entity

    async def _run(self, entity: EntityCell) -> None:
        try:
            await entity.run()
        except (NoEntity, DecodeError):
            pass  # said where it happened
        except Exception:
            logger.exception(
                "entity %r could not be built; the messages waiting for it were not handled "
                "(a transport delivers them again)",
                entity.name,
                extra={"actor": entity.name},
            )

    def partition(self, key: str) -> int:
        """The partition of `key`."""
        return partition_of(key, 1 if self.transport is None else self.transport.partitions)

    def owns(self, key: str) -> bool:
        """Whether this instance owns the partition of `key` (may build its entity)."""
        return self.tenure(key) is not None

    def tenure(self, key: str) -> tuple[int, int] | None:
        """The partition of `key` and its fencing token, if this instance owns it now."""
        if self.transport is None:
            return (0, 0)
        partition = self.partition(key)
        token = self.transport.owned(self.kind.group).get(partition)
        return None if token is None else (partition, token)

    def owned(self) -> frozenset[int]:
        """The partitions of the kind's group this instance owns now."""
        if self.transport is None:
            return frozenset({0})
        return frozenset(self.transport.owned(self.kind.group))

    # -- passivation and release ----------------------------------------------------------------

    async def sweep(self) -> None:
        """Stop each entity idle for `passivate_after` seconds, in order of last message."""
        after = self.kind.sharding.passivate_after
        entities = self.entities
        with anyio.CancelScope() as self.sweeping:
            while True:
                if not entities:
                    self.wake = anyio.Event()
                    await self.wake.wait()
                    continue
                key, entity = next(iter(entities.items()))
                wait = entity.touched + after - self.clock()
                if wait > 0:
                    await anyio.sleep(wait)
                elif entity.queue.depth:  # still busy with what came before: not idle
                    entity.touched = self.clock()
                    entities.move_to_end(key)
                else:
                    self._set_aside(key, entity)
                    entity.request_stop()

    @property
    def entity_host(self) -> _ShardHost:
        """The host of this shard's entities."""
        host: _ShardHost = self.host  # type: ignore[assignment]
        return host

    def forget(self, entity: EntityCell) -> None:
        """`entity` has stopped: keep its state, add up its counters, forget it."""
        key = entity.key
        if key is not None and entity.refusal is None:
            if self.entities.get(key) is entity:
                del self.entities[key]
            if self.retiring.get(key) is entity:
                del self.retiring[key]
            if entity.committed is not None and entity.tenure is not None:
                self.store.keep(key, entity.committed, entity.tenure[1])
            self.passivations += 1
            if entity.tenure is not None:
                _stopped(entity, entity.tenure)
        retired = self.retired
        for name in _COUNTERS:
            retired[name] += getattr(entity, name)

    def _set_aside(self, key: str, entity: EntityCell) -> None:
        """`entity` stops: the key's next entity waits for it."""
        if self.entities.get(key) is entity:
            del self.entities[key]
        self.retiring[key] = entity

    async def release(self, partitions: frozenset[int]) -> None:
        """Stop the entities of `partitions` and forget their kept states; wait for them.

        The messages waiting for them are left unhandled (a transport delivers them
        again to the partition's new owner); the message each one is handling finishes
        first, and commits.
        """
        doomed = [
            (key, entity)
            for key, entity in (*self.entities.items(), *self.retiring.items())
            if self.partition(key) in partitions
        ]
        for key, entity in doomed:
            self._set_aside(key, entity)
            if entity.accepting:
                stopped = ActorbusError(
                    f"entity {entity.name!r} was stopped: its partition was handed over"
                )
                entity.dead_letter_waiting(stopped, dead=False)
                entity.request_stop()
        for _, entity in doomed:
            await entity.wait_stopped()
        self.store.forget(lambda key: self.partition(key) in partitions)

    # -- observability --------------------------------------------------------------------------

    def stats(self) -> ShardStats:
        """The kind's counters: its entities' added up, with activations and passivations."""
        totals = dict(self.retired)
        for entity in (*self.entities.values(), *self.retiring.values()):
            for name in _COUNTERS:
                totals[name] += getattr(entity, name)
        depth = sum(entity.queue.depth for entity in self.entities.values())
        return ShardStats(
            name=self.name,
            processed=int(totals["processed"]),
            failed=int(totals["failed"]),
            retries=int(totals["retries"]),
            restarts=int(totals["restarts"]),
            dropped=int(totals["dropped"]),
            dead_lettered=int(totals["dead_lettered"]),
            depth=depth,
            handling_time=totals["handling_time"],
            active=len(self.entities),
            activations=self.activations,
            passivations=self.passivations,
        )


def _stopped(entity: EntityCell, tenure: tuple[int, int]) -> None:
    logger.debug(
        "entity %r stopped (partition %d, fencing token %d, %d messages)",
        entity.name,
        *tenure,
        entity.processed,
        extra={
            "actor": entity.name,
            "entity_kind": entity.namespace,
            "entity_key": entity.key,
            "partition": tenure[0],
            "fencing_token": tenure[1],
            "entity_event": "stopped",
        },
    )


class _ShardHost:
    """The host of a shard's cells (`CellHost`, `EntityHost`): the shard and its entities.

    It hears when one stops (the shard's own stop goes on to the system's registry), and
    gives entities their kind's state.
    """

    __slots__ = ("actors", "codec", "region")

    def __init__(self, region: ShardRegion, actors: CellHost, codec: StateCodec | None) -> None:
        self.region: ShardRegion = region
        self.actors: CellHost = actors
        self.codec: StateCodec | None = codec

    def tenure(self, key: str) -> tuple[int, int] | None:
        """The partition of `key` and its fencing token, if owned here now."""
        return self.region.tenure(key)

    async def load(self, key: str, token: int) -> bytes | None:
        """The last committed state of `key`: kept here, else the transport's, else None.

        A state kept here is used only in the tenure that committed it (`token`): after a
        partition was lost and taken back, its states are read from the transport again.
        """
        region = self.region
        raw = region.store.get(key, token)
        if raw is not None or region.transport is None:
            return raw
        return await region.transport.load_state(region.kind.name, key)

    def stopping(self, cell: Cell) -> None:
        """A cell of the shard takes no more messages."""
        if cell is self.region:
            self.actors.stopping(cell)

    def stopped(self, cell: Cell) -> None:
        """A cell of the shard has stopped: keep its state, count it, forget it."""
        region = self.region
        if cell is region:
            if region.sweeping is not None:
                region.sweeping.cancel()
        else:
            region.forget(cell)  # type: ignore[arg-type]
        self.actors.stopped(cell)

    async def spawn_child(self, parent: Cell, request: Spawn) -> Cell:
        """An entity spawns a child: an ordinary actor, under the entity."""
        return await self.actors.spawn_child(parent, request)


class Shard:
    """An entity kind hosted by this instance (`ActorSystem.shard`).

    Attributes:
        kind: The entity class.
    """

    __slots__ = ("_region", "kind")

    def __init__(self, region: ShardRegion) -> None:
        self._region = region
        self.kind: type[Any] = region.kind.cls

    def __repr__(self) -> str:
        return f"<Shard {self._region.kind.name!r} entities={len(self._region.entities)}>"

    @property
    def name(self) -> str:
        """The kind's name (`Sharding.name`, else the class's ``__name__``)."""
        return self._region.kind.name

    @property
    def group(self) -> str:
        """The kind's consumer group: ``entity:<name>``."""
        return self._region.kind.group

    @property
    def entities(self) -> frozenset[str]:
        """The keys whose entity is live here now (a snapshot)."""
        return frozenset(self._region.entities)

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions of the kind's group this instance owns now (a snapshot)."""
        return self._region.owned()

    @property
    def stats(self) -> ShardStats:
        """The kind's counters (also in `ActorSystem.stats()` under the kind's name)."""
        return self._region.stats()
