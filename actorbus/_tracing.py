"""W3C trace context: `traceparent` travels from a publishing handler to the receivers.

When a handler runs, the `traceparent` of its message becomes the current one (a context
variable of the actor's task). Publishing from there adds a child `traceparent` (same
trace id, a new span id) to the envelope's headers, so one request can be followed from
actor to actor and across Redis. Nothing is generated when there is no trace to follow.

An `Instrumentation` (OpenTelemetry's, when installed) can take over both steps to open
real spans; see `actorbus.contrib.otel`.
"""

from __future__ import annotations

import contextvars
import os
import re
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextlib import AbstractContextManager

    from ._envelope import Envelope

__all__ = ["Instrumentation", "child_of", "current", "install", "outgoing"]

HEADER: Final = "traceparent"
_FORMAT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "actorbus_traceparent", default=None
)


class Instrumentation(Protocol):
    """Hooks a tracing library implements to see publishing and handling."""

    def inject(
        self, headers: Mapping[str, str] | None, envelope_type: str
    ) -> Mapping[str, str] | None:
        """Headers for an outgoing envelope, with the current trace context added."""
        ...

    def handling(self, envelope: Envelope, actor: str) -> AbstractContextManager[object]:
        """A context manager around the handling of one message (a consumer span).

        Exceptions reach it only when they end the handling (STOP, FAIL_FAST, an
        escalation, cancellation); supervision catches the rest, see `failed`.
        """
        ...

    def failed(self, error: Exception) -> None:
        """A handler call raised `error`; called inside `handling`, before supervision acts."""
        ...


instrumentation: Instrumentation | None = None


def install(hooks: Instrumentation | None) -> None:
    """Use `hooks` for every system in the process (None: plain propagation only)."""
    global instrumentation  # noqa: PLW0603 - one switch for the process, like logging's
    instrumentation = hooks


def child_of(traceparent: str) -> str | None:
    """A `traceparent` for a child span of `traceparent`; None if it is not valid."""
    found = _FORMAT.fullmatch(traceparent)
    if found is None:
        return None
    trace_id, _, flags = found.groups()
    return f"00-{trace_id}-{os.urandom(8).hex()}-{flags}"


def outgoing(headers: Mapping[str, str] | None, envelope_type: str) -> Mapping[str, str] | None:
    """The headers of an envelope being published, with trace context when there is some."""
    if headers is not None and HEADER in headers:
        return headers
    if instrumentation is not None:
        return instrumentation.inject(headers, envelope_type)
    parent = current.get()
    if parent is None:
        return headers
    child = child_of(parent)
    if child is None:
        return headers
    return {**headers, HEADER: child} if headers else {HEADER: child}
