"""The records the runtime publishes or returns: lifecycle events, dead letters, stats."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._events import event, mark_builtin

if TYPE_CHECKING:
    from ._envelope import Envelope

__all__ = [
    "ActorStats",
    "DeadLetter",
    "ShardStats",
    "SystemStarted",
    "SystemStopping",
    "Terminated",
]


@event("actorbus.system.started")
class SystemStarted:
    """Published locally once every start-up actor runs (and before transport intake)."""

    system: str


@event("actorbus.system.stopping")
class SystemStopping:
    """Published locally when shutdown begins, before mailboxes are drained."""

    system: str


@event("actorbus.actor.terminated")
class Terminated:
    """Sent to watchers when an actor stops; `reason` is None for a normal stop."""

    name: str
    reason: BaseException | None = None


@event("actorbus.dead_letter")
class DeadLetter:
    """A message that was not handled: dropped, undeliverable, or given up on.

    Attributes:
        envelope: The message, with its id (the idempotency key) and type.
        actor: The actor it was meant for ("" when no actor could be chosen).
        error: Why: the handler's exception, `MailboxFull`, `ActorStopped`, `DecodeError`….
    """

    envelope: Envelope
    actor: str
    error: BaseException | None = None


mark_builtin()


@attrs.frozen
class ActorStats:
    """A snapshot of one actor's counters (like trio's ``statistics()`` records).

    Attributes:
        name: The actor's name.
        processed: Messages handled (whatever the outcome).
        failed: Handler calls that raised, whatever the policy (retries included).
        retries: Handler calls repeated by RETRY.
        restarts: Times the actor was restarted.
        dropped: Messages dropped by a full mailbox.
        dead_lettered: Messages this actor recorded as dead letters.
        depth: Messages waiting in the mailbox now.
        handling_time: Total seconds spent in handlers.
        handling_p50: Median seconds per message over a sample of recent ones (0 when
            none yet; see the observability guide).
        handling_p99: 99th percentile seconds per message over the same sample.
    """

    name: str
    processed: int = 0
    failed: int = 0
    retries: int = 0
    restarts: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    depth: int = 0
    handling_time: float = 0.0
    handling_p50: float = 0.0
    handling_p99: float = 0.0


@attrs.frozen
class ShardStats(ActorStats):
    """The counters of an entity kind hosted here: its entities' counters added up.

    `ActorSystem.stats()` gives one under the kind's name; the counters of `ActorStats`
    add up those of every entity the kind has had here (the percentiles are not kept
    per kind, and stay 0).

    Attributes:
        active: Entities live here now (being built, or built and not stopping).
        activations: Entities built here so far (a key's entity counts again each time
            it is built after it stopped).
        passivations: Entities that stopped (idle, released, or stopped by their
            supervision).
    """

    active: int = 0
    activations: int = 0
    passivations: int = 0
