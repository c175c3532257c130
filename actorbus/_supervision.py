"""Supervision settings: what a handler failure does to the message and to the actor.

This module decides; the actor loop (`_cell.py`) carries the decisions out. It holds the
value objects and every decision about a failure: the policy for an exception, whether a
failed handler call is tried again and after how long (`Supervision.decide`), what a
child's escalation does to its parent (`Supervision.decide_for_child`), and the restart
intensity (`RestartWindow`).
"""

from __future__ import annotations

import enum
import random
from collections import deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Backoff", "Decision", "Policy", "RestartWindow", "Supervision"]


class Policy(enum.Enum):
    """What happens when a handler raises (see the Supervision guide for OTP/Akka terms)."""

    IGNORE = "ignore"
    """Drop this handler call; no error log (a debug line only). State is kept, and the
    message's other matching handlers still run."""
    LOG_AND_CONTINUE = "log_and_continue"
    """Log at ERROR with the traceback, keep going with the next message. State is kept."""
    RETRY = "retry"
    """Call the handler again with the same message, with backoff; then apply `then`."""
    RESTART = "restart"
    """Discard the instance and build a fresh one; too many restarts escalate."""
    DEAD_LETTER = "dead_letter"
    """Record the message as a `DeadLetter` and keep going."""
    STOP = "stop"
    """Stop this actor; what is left in its mailbox is dead-lettered."""
    FAIL_FAST = "fail_fast"
    """Escalate to the parent actor, or fail the whole system when there is none."""


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        msg = f"{attribute.name} must be >= 0, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter, for retries and restarts.

    The n-th wait (n ≥ 1) is ``min(maximum, initial * multiplier ** (n - 1))``, scaled by
    a random factor in ``[1 - jitter, 1 + jitter]`` and capped at `maximum` again.
    """

    initial: float = attrs.field(default=0.1, validator=_non_negative)
    maximum: float = attrs.field(default=10.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.1, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.jitter > 1:
            msg = f"Backoff jitter is a fraction in [0, 1], got {self.jitter!r}"
            raise ValueError(msg)

    def delay(self, attempt: int, *, rand: float | None = None) -> float:
        """Seconds to wait before try number `attempt` + 1 (`attempt` ≥ 1)."""
        base = min(self.maximum, self.initial * self.multiplier ** max(attempt - 1, 0))
        factor = 1.0 + self.jitter * (2.0 * (random.random() if rand is None else rand) - 1.0)  # noqa: S311
        return min(self.maximum, max(0.0, base * factor))


_NO_OVERRIDES: Final[Mapping[type[BaseException], Policy]] = MappingProxyType({})


def _freeze_on(value: Mapping[type[BaseException], Policy]) -> Mapping[type[BaseException], Policy]:
    for exc_type, policy in value.items():
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            msg = f"Supervision(on=...) keys must be exception classes, got {exc_type!r}"
            raise TypeError(msg)
        if not isinstance(policy, Policy):
            msg = f"Supervision(on=...) values must be Policy members, got {policy!r}"
            raise TypeError(msg)
    return MappingProxyType(dict(value)) if value else _NO_OVERRIDES


@attrs.frozen
class Supervision:
    """How an actor's handler failures are handled.

    Attributes:
        policy: The policy for exceptions not listed in `on`.
        max_retries: RETRY: how many more calls after the first failure.
        backoff: RETRY: the wait between calls.
        then: RETRY: the policy applied when the retries are used up.
        max_restarts: RESTART: restarts allowed within `within` seconds; one more escalates.
        within: RESTART: the sliding window, in seconds.
        on: A policy per exception class; the most specific class (by MRO) wins.
        restart_backoff: RESTART: optional wait before building the fresh instance, so a
            crash loop does not spin (the n-th restart in the window waits ``delay(n)``).
    """

    policy: Policy = attrs.field(
        default=Policy.LOG_AND_CONTINUE, validator=attrs.validators.instance_of(Policy)
    )
    max_retries: int = attrs.field(default=3, kw_only=True, validator=_non_negative)
    backoff: Backoff = attrs.field(factory=Backoff, kw_only=True)
    then: Policy = attrs.field(default=Policy.DEAD_LETTER, kw_only=True)
    max_restarts: int = attrs.field(default=3, kw_only=True, validator=_non_negative)
    within: float = attrs.field(default=60.0, kw_only=True, validator=_non_negative)
    on: Mapping[type[BaseException], Policy] = attrs.field(
        default=_NO_OVERRIDES, kw_only=True, converter=_freeze_on
    )
    restart_backoff: Backoff | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.then is Policy.RETRY:
            msg = "Supervision(then=Policy.RETRY) would retry forever; pick what follows retries"
            raise ValueError(msg)

    def decide(self, exc: BaseException, retries: int) -> Decision:
        """What a handler call that raised `exc` leads to, after `retries` retries of it.

        RETRY while retries are left (with the backoff's delay before the next call),
        then `then`; any other policy as it is.
        """
        policy = self.policy_for(exc)
        if policy is Policy.RETRY:
            if retries < self.max_retries:
                return Decision(Policy.RETRY, self.backoff.delay(retries + 1))
            return Decision(self.then, 0.0)
        return Decision(policy, 0.0)

    def decide_for_child(self, exc: BaseException) -> Policy:
        """What a child's escalation of `exc` does to its parent.

        RESTART restarts the parent (and with it its children), STOP stops it, FAIL_FAST
        escalates further; any other policy leaves the child stopped (returned as IGNORE).
        """
        policy = self.policy_for(exc)
        if policy in (Policy.RESTART, Policy.STOP, Policy.FAIL_FAST):
            return policy
        return Policy.IGNORE

    def policy_for(self, exc: BaseException) -> Policy:
        """The policy for `exc`: the entry in `on` for its most specific class, else `policy`."""
        if self.on:
            for klass in type(exc).__mro__:
                chosen = self.on.get(klass)
                if chosen is not None:
                    return chosen
        return self.policy


class Decision(NamedTuple):
    """A supervision decision about one failed handler call."""

    policy: Policy
    """What to do: RETRY (call the handler again), or the policy to apply."""
    delay: float
    """RETRY: seconds to wait before the next call."""


class RestartWindow:
    """Counts restarts in a sliding time window (restart intensity, as in Erlang/OTP)."""

    __slots__ = ("_times", "limit", "within")

    def __init__(self, limit: int, within: float) -> None:
        self.limit = limit
        self.within = within
        self._times: deque[float] = deque()

    def admit(self, now: float) -> int | None:
        """Record a restart at `now`; its number in the window, or None if over the limit."""
        times = self._times
        while times and times[0] <= now - self.within:
            times.popleft()
        if len(times) >= self.limit:
            return None
        times.append(now)
        return len(times)
