"""A snapshot of a running system: its actors as a tree, their counters, dead letters, streams.

`take` reads the system without waiting for it (a copy of a few integers per actor, in
one go, between two scheduling points, so the tree it sees is consistent);
`transport_status` asks the transport about its streams and partitions, which may mean
a round trip to Redis. Everything is read through the core's public names: the
`Actors` registry (`actors_of`), each `Cell`'s counters and mailbox, `dead_letters`, and
for an entity kind hosted here its `ShardRegion` (a top-level actor whose children are
its entities) and its `ShardStats`.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Final

import attrs

from actorbus._entity import EntityCell
from actorbus._shard import ShardRegion
from actorbus._system import actors_of

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from actorbus._cell import Cell
    from actorbus._records import DeadLetter
    from actorbus._system import ActorSystem
    from actorbus._transport import PartitionOwner, StreamStatus, Transport

__all__ = [
    "ACTOR",
    "ENTITY",
    "SHARD",
    "ActorRow",
    "EntityKindRow",
    "LetterRow",
    "Snapshot",
    "TransportStatus",
    "instance_name",
    "take",
    "transport_status",
]

LETTERS: Final = 20
"""The latest dead letters a snapshot keeps."""
PREVIEW_CHARS: Final = 240
"""A dead letter's event preview and error are cut to this many characters."""


ACTOR: Final = "actor"
SHARD: Final = "shard"
ENTITY: Final = "entity"


@attrs.frozen
class ActorRow:
    """One actor: where it sits in the tree, its mailbox and its counters.

    `role` is `ACTOR`, `SHARD` (the actor of an entity kind hosted here, whose children
    are its entities) or `ENTITY` (an entity; its kind is the entity kind's name).
    """

    name: str
    kind: str
    parent: str | None
    processed: int
    failed: int
    restarts: int
    dropped: int
    depth: int
    capacity: int
    role: str = ACTOR


@attrs.frozen
class EntityKindRow:
    """An entity kind hosted here: its entities now, and its counters (`ShardStats`).

    The counters add up every entity the kind has had here, stopped ones included.
    """

    kind: str
    group: str
    active: int
    activations: int
    passivations: int
    processed: int
    failed: int
    restarts: int
    dead_lettered: int
    depth: int
    partitions: tuple[int, ...]
    """The partitions of the kind's group owned here now."""


@attrs.frozen
class LetterRow:
    """One dead letter, as text: never markup, cut to `PREVIEW_CHARS`."""

    time: str
    actor: str
    type: str
    id: str
    error: str
    preview: str


@attrs.frozen
class TransportStatus:
    """What the transport says about the application's streams and partitions."""

    streams: tuple[StreamStatus, ...] = ()
    partitions: dict[str, dict[int, PartitionOwner]] | None = None
    error: str | None = None


@attrs.frozen
class Snapshot:
    """One instance of an application at one moment."""

    app: str
    instance: str
    host: str
    pid: int
    backend: str
    transport: str
    taken: float
    actors: tuple[ActorRow, ...]
    letters: tuple[LetterRow, ...]
    entities: tuple[EntityKindRow, ...] = ()


def instance_name(system: ActorSystem) -> str:
    """The name this instance goes by: its transport's instance, else ``host:pid``."""
    instance = getattr(system.transport, "instance", None)
    if isinstance(instance, str) and instance:
        return instance
    return f"{socket.gethostname()}:{os.getpid()}"


def take(system: ActorSystem) -> Snapshot:
    """Read `system` now (never waits; parents come before their children)."""
    actors = actors_of(system)
    return Snapshot(
        app=system.name,
        instance=instance_name(system),
        host=socket.gethostname(),
        pid=os.getpid(),
        backend=_backend(),
        transport=_describe(system.transport),
        taken=time.time(),
        actors=tuple(_row(cell) for cell in _tree_order(actors.top)),
        letters=tuple(_letter(letter) for letter in reversed(system.dead_letters[-LETTERS:])),
        entities=tuple(
            _kind_row(cell)
            for cell in actors.top
            if isinstance(cell, ShardRegion) and not cell.stopped
        ),
    )


async def transport_status(transport: Transport | None) -> TransportStatus:
    """The transport's streams and partition owners; an error is reported, not raised."""
    if transport is None:
        return TransportStatus()
    try:
        return TransportStatus(await transport.streams(), await transport.partition_owners())
    except Exception as exc:  # shown on the page: the application goes on regardless
        return TransportStatus(error=_cut(f"{type(exc).__name__}: {exc}"))


def _tree_order(top: Sequence[Cell] | dict[Cell, None]) -> Iterator[Cell]:
    stack = list(reversed(list(top)))
    while stack:
        cell = stack.pop()
        if cell.stopped:
            continue
        yield cell
        stack.extend(reversed(list(cell.children)))


def _row(cell: Cell) -> ActorRow:
    queue = cell.queue
    parent = cell.parent
    kind, role = _kind(cell)
    return ActorRow(
        name=cell.name,
        kind=kind,
        parent=None if parent is None else parent.name,
        processed=cell.processed,
        failed=cell.failed,
        restarts=cell.restarts,
        dropped=cell.dropped,
        depth=queue.depth,
        capacity=queue.settings.capacity,
        role=role,
    )


def _kind(cell: Cell) -> tuple[str, str]:
    """The kind an actor is counted under, and its role."""
    if isinstance(cell, ShardRegion):
        return f"{cell.kind.name} (entity kind)", SHARD
    if isinstance(cell, EntityCell):  # an entity (the actors it spawns are actors)
        return cell.namespace, ENTITY
    if cell.factory is not None:
        return cell.factory.__qualname__, ACTOR
    specs = cell.table.specs
    return (specs[0].name if specs else "function"), ACTOR


def _kind_row(region: ShardRegion) -> EntityKindRow:
    stats = region.stats()
    return EntityKindRow(
        kind=region.kind.name,
        group=region.kind.group,
        active=stats.active,
        activations=stats.activations,
        passivations=stats.passivations,
        processed=stats.processed,
        failed=stats.failed,
        restarts=stats.restarts,
        dead_lettered=stats.dead_lettered,
        depth=stats.depth,
        partitions=tuple(sorted(region.owned())),
    )


def _letter(letter: DeadLetter) -> LetterRow:
    envelope = letter.envelope
    error = letter.error
    return LetterRow(
        time="" if envelope.time is None else envelope.time.isoformat(timespec="seconds"),
        actor=letter.actor,
        type=envelope.type,
        id=envelope.id,
        error="" if error is None else _cut(f"{type(error).__name__}: {error}"),
        preview=_cut(_preview(envelope.data, envelope.to_cloudevent)),
    )


def _preview(data: object, as_cloudevent: Any) -> str:
    if isinstance(data, bytes | bytearray):
        return f"<{len(data)} bytes>"
    try:
        plain = as_cloudevent().get("data")
        return json.dumps(plain, ensure_ascii=False, separators=(", ", ": "), default=repr)
    except Exception:  # data of no JSON shape (a PROCESS-scope object): its repr
        return repr(data)


def _cut(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _describe(transport: Transport | None) -> str:
    """The transport's kind and instance; never its URL (it may hold a password)."""
    if transport is None:
        return "none (in-process)"
    instance = getattr(transport, "instance", None)
    kind = type(transport).__name__
    return f"{kind} instance {instance}" if isinstance(instance, str) else kind


def _backend() -> str:
    try:
        import trio  # noqa: PLC0415 - trio is optional
    except ImportError:
        return "asyncio"
    return "trio" if trio.lowlevel.in_trio_task() else "asyncio"
