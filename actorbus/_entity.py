"""One entity: the cell of one key of an entity kind, and the keeper of its state.

An `EntityCell` is an actor's cell (`actorbus._cell`) that is its own `Keeper`. Before
each instance of the entity is built, it waits for the key's previous entity to have
stopped (one live entity per key), checks that this instance owns the key's partition
(the tenure it is built in: the partition's fencing token), then gives the instance the
last committed state.
After each message it commits the state: it serializes it once, and when the bytes
changed they become the committed state (in memory) and, for a message a transport
delivered, the `Tracker.commit` the transport saves with the message's acknowledgement.
When a handler call fails, the state is put back from the committed bytes (the only
time they are decoded), so a failed message changes nothing: before RETRY calls the
handler again, on RESTART (the fresh instance gets the committed state), and for any
other policy, whose message then commits nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._cell import Cell, CellHost
from ._exceptions import ActorbusError, DecodeError
from ._message import Message

if TYPE_CHECKING:
    from ._cell import Keeper
    from ._message import Tracker
    from ._runtime import Runtime
    from ._sharding import EntityKind
    from ._state import StateCodec

__all__ = ["EntityCell", "EntityHost", "NoEntity"]

logger: Final = logging.getLogger("actorbus.entity")


class NoEntity(Exception):
    """Why no entity is built for a cell: it was stopped first, or it cannot be built."""


class EntityHost(CellHost, Protocol):
    """What an entity needs from the shard that hosts it."""

    @property
    def codec(self) -> StateCodec | None:
        """The kind's state codec (None: the kind keeps no state)."""
        ...

    def tenure(self, key: str) -> tuple[int, int] | None:
        """The partition of `key` and its fencing token, if owned here now (else None)."""
        ...

    async def load(self, key: str, token: int) -> bytes | None:
        """The last committed state of `key`, in the tenure `token` (None: it has none)."""
        ...


def _fenced_off(tracker: Tracker | None) -> bool:
    return tracker is not None and tracker.fence is not None and not tracker.fence()


class EntityCell(Cell):
    """The cell of the entity of one key: an actor cell that keeps the entity's state.

    Attributes:
        key: The entity's key (None for a cell that only refuses messages, see
            `refusal`).
        committed: The bytes of the last committed state (None until the state is
            loaded, and for a kind without state).
        touched: When a message for it was last routed (the shard's clock).
        tenure: The partition of its key and the partition's fencing token when it was
            built (None until then).
        predecessor: The key's previous entity, which must stop before this one starts.
        refusal: Set on a cell that must not become an entity (a message without a key,
            a key whose partition is not ours, a kind that is stopping): the error its
            messages get, and whether they are dead-lettered (else left unhandled, for
            a later delivery).
    """

    __slots__ = (
        "built",
        "committed",
        "entity_host",
        "key",
        "namespace",
        "predecessor",
        "refusal",
        "spoiled",
        "tenure",
        "touched",
    )

    def __init__(
        self,
        runtime: Runtime,
        host: EntityHost,
        kind: EntityKind,
        key: str | None,
        *,
        parent: Cell,
        predecessor: EntityCell | None = None,
        refusal: tuple[Exception, bool] | None = None,
        touched: float = 0.0,
    ) -> None:
        super().__init__(
            runtime,
            host,
            f"{kind.name}/{key}",
            factory=kind.cls,
            args=(key,) if kind.takes_key else (),
            kwargs={},
            table=kind.table,
            mailbox=kind.mailbox,
            supervision=kind.supervision,
            group=kind.group,
            parent=parent,
        )
        self.keeper: Keeper | None = self
        self.entity_host: EntityHost = host
        self.namespace: str = kind.name
        self.key: str | None = key
        self.predecessor = predecessor
        self.refusal: tuple[Exception, bool] | None = refusal
        self.touched: float = touched
        self.committed: bytes | None = None
        self.tenure: tuple[int, int] | None = None
        self.built: bool = False  # its first instance got its state (a restart reuses it)
        self.spoiled: bool = False  # a handler call of the current message failed for good

    # -- Keeper -------------------------------------------------------------------------------

    async def prepare(self, instance: Any) -> None:
        """Set ``instance.key``, wait for the key's previous entity to stop, set its state.

        Raises:
            NoEntity: If this cell was stopped (or refuses) before an entity was built.
            DecodeError: If the stored state does not fit the kind's state class (the
                waiting messages are dead-lettered with it).
            Exception: Whatever the transport raised loading the state (the waiting
                messages are left unhandled, for a later delivery).
        """
        instance.key = self.key
        codec = self.entity_host.codec
        if self.built:  # RESTART: the fresh instance gets the last commit
            if codec is not None and self.committed is not None:
                instance.state = codec.decode(self.committed, str(self.key))
            return
        predecessor, self.predecessor = self.predecessor, None
        if predecessor is not None:
            await predecessor.wait_stopped()
        if self.refusal is not None:
            refusal, dead = self.refusal
            if dead:
                logger.warning("%s; dead-lettered", refusal, extra={"actor": self.name})
            self.dead_letter_waiting(refusal, dead=dead)
            raise NoEntity(str(refusal))
        self._check_accepting()
        key = self.key
        assert key is not None  # noqa: S101 - a refusing cell has no key, and stopped above
        tenure = self._owned(key)
        if codec is None:
            self._built(tenure)
            return
        raw = await self.entity_host.load(key, tenure[1])
        self._check_accepting()  # released (or stopped) while its state was being read
        if self.entity_host.tenure(key) != tenure:  # lost, maybe taken back, meanwhile
            self._owned(key, lost=True)
        if raw is None:
            state = codec.fresh()
            raw = codec.encode(state, key)
        else:
            try:
                state = codec.decode(raw, key)
            except DecodeError as exc:
                logger.error(  # noqa: TRY400 - the reason is the message: no traceback to show
                    "%s; its messages are dead-lettered", exc, extra={"actor": self.name}
                )
                self.dead_letter_waiting(exc)
                raise
        instance.state = state
        self.committed = raw
        self._built(tenure)

    def discard(self, *, retry: bool) -> None:
        """A handler call failed: the state goes back to the last commit (see the module)."""
        if self.committed is None:
            return
        if not retry:
            self.spoiled = True
        self._restore()

    def handled(self, item: object) -> None:
        """Commit the state the message left, or discard it if a handler call failed."""
        committed = self.committed
        if committed is None:
            return
        if self.spoiled:
            self.spoiled = False
            self._restore()  # a later handler of the message may have changed it again
            return
        instance = self.instance
        if instance is None:  # a RESTART that could not build the entity again
            return
        codec = self.entity_host.codec
        assert codec is not None  # noqa: S101 - a kind with state, since `committed` is set
        try:
            raw = codec.encode(instance.state, str(self.key))
        except TypeError as exc:
            self._unsaved(item, exc)
            return
        if raw != committed:
            self.committed = raw
            tracker = item.tracker if type(item) is Message else None
            if tracker is not None:
                assert self.key is not None  # noqa: S101 - only an entity of a key commits
                tracker.commit = (self.namespace, self.key, raw)

    # -- helpers ----------------------------------------------------------------------------

    def _owned(self, key: str, *, lost: bool = False) -> tuple[int, int]:
        """The tenure of `key` here; if none (or `lost`), leave the messages to its owner.

        Raises:
            NoEntity: If this instance does not own the key's partition (any more).
        """
        tenure = None if lost else self.entity_host.tenure(key)
        if tenure is None:
            error = ActorbusError(
                f"entity {self.name!r} was not built: this instance lost the partition of "
                "its key; the messages waiting for it are left to the partition's owner"
            )
            self.dead_letter_waiting(error, dead=False)
            raise NoEntity(str(error))
        return tenure

    def _built(self, tenure: tuple[int, int]) -> None:
        self.tenure = tenure
        self.built = True
        logger.debug(
            "entity %r activated (partition %d, fencing token %d)",
            self.name,
            *tenure,
            extra={
                "actor": self.name,
                "entity_kind": self.namespace,
                "entity_key": self.key,
                "partition": tenure[0],
                "fencing_token": tenure[1],
                "entity_event": "activated",
            },
        )

    def _check_accepting(self) -> None:
        if not self.accepting:
            msg = f"entity {self.name!r} was stopped before it was built"
            raise NoEntity(msg)

    def _restore(self) -> None:
        instance = self.instance
        codec = self.entity_host.codec
        if instance is not None and codec is not None and self.committed is not None:
            instance.state = codec.decode(self.committed, str(self.key))

    def _unsaved(self, item: object, error: TypeError) -> None:
        """The state cannot be saved: the message is dead-lettered, its changes discarded."""
        logger.error(
            "%s: the message is dead-lettered and its changes discarded",
            error,
            extra={"actor": self.name},
        )
        self.dead_letter(item, error)
        tracker = item.tracker if type(item) is Message else None
        if tracker is not None:
            tracker.error = error  # an asker gets the error, not a reply that was not kept
        self._restore()

    def dead_letter_waiting(self, error: Exception, *, dead: bool = True) -> None:
        """Close the mailbox and dead-letter what waits in it with `error`.

        `dead` marks the messages dead-lettered for their transport (it acknowledges
        them into its dead letters); otherwise they are left unhandled, for a later
        delivery. A delivery that is no longer ours (`Tracker.fence`) is always left
        unhandled, without a dead letter: it belongs to the new owner of its partition.
        """
        for item in self.queue.close():
            tracker = item.tracker if type(item) is Message else None
            if _fenced_off(tracker):
                assert tracker is not None  # noqa: S101 - checked by _fenced_off
                tracker.finish(handled=False)
                self.runtime.done()
            elif dead:
                self.dead_letter(item, error, counted=True)
                if tracker is not None:
                    tracker.finish()
            else:
                self.dead_letter(item, error, unqueued=True, counted=True)
