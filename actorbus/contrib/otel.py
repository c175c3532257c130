"""OpenTelemetry spans for publishing and handling: ``instrument()`` turns them on.

Once `instrument` has run, every publish opens a PRODUCER span ``publish <type>`` (ended at
once: publishing is just handing the envelope over) whose context travels in the
envelope's ``traceparent`` header, and every message an actor handles runs inside a CONSUMER
span ``handle <type>``, child of that producer span, current while the handlers run. So a
request that crosses actors, and processes through Redis, shows as one trace::

    from opentelemetry.sdk.trace import TracerProvider

    from actorbus.contrib import otel

    otel.instrument(tracer_provider=TracerProvider())  # or the global provider by default

Nothing happens on import: actorbus never imports OpenTelemetry by itself. Call
`instrument` once, at start-up, after configuring the SDK (see the Observability guide
for why this is explicit).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Final

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as _missing:  # the extra is not installed
    msg = "actorbus.contrib.otel needs the OpenTelemetry API: pip install 'actorbus[otel]'"
    raise ImportError(msg) from _missing

from actorbus import _tracing
from actorbus._cell import LoopExit
from actorbus._version import __version__

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

    from opentelemetry.trace import Span, TracerProvider

    from actorbus._envelope import Envelope

__all__ = ["OpenTelemetryInstrumentation", "instrument", "uninstrument"]

TRACER_NAME: Final = "actorbus"
_SYSTEM: Final = "actorbus"
# The message being handled, for `failed` (the OTel current span may be whatever the handler
# made current by then).
_handling: contextvars.ContextVar[_Handling | None] = contextvars.ContextVar(
    "actorbus_otel_handling", default=None
)


class _Handling:
    __slots__ = ("recorded", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        # Exceptions already on the span: one seen by `failed` that then ends the handling
        # (STOP, FAIL_FAST) is recorded once.
        self.recorded: list[BaseException] = []

    def record(self, error: BaseException) -> None:
        if any(seen is error for seen in self.recorded):
            return
        self.recorded.append(error)
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class OpenTelemetryInstrumentation:
    """The `actorbus` tracing hooks implemented with the OpenTelemetry API.

    Trace context travels as W3C ``traceparent`` (and ``tracestate``) headers, whatever
    global propagator is configured: envelope headers are CloudEvents attributes, whose
    names are restricted (lower-case letters and digits), and actorbus's own propagation
    speaks W3C, so both ends always agree.

    Args:
        tracer_provider: Where spans go; the global tracer provider when None.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
        self._propagator = TraceContextTextMapPropagator()

    def inject(
        self, headers: Mapping[str, str] | None, envelope_type: str
    ) -> Mapping[str, str] | None:
        """Open and end a PRODUCER span for one publish; return `headers` with its context.

        Its parent is the current OpenTelemetry span, else the ``traceparent`` of the
        message being handled (actorbus's own context), else none: a new trace starts.
        """
        parent = otel_context.get_current()
        parent_span = trace.get_current_span(parent).get_span_context()
        if not parent_span.is_valid:
            traceparent = _tracing.current.get()
            incoming = {_tracing.HEADER: traceparent} if traceparent else {}
            parent = self._propagator.extract(incoming, context=otel_context.Context())
            parent_span = trace.get_current_span(parent).get_span_context()
        span = self._tracer.start_span(
            f"publish {envelope_type}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": envelope_type,
            },
        )
        carrier: dict[str, str] = dict(headers) if headers else {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
        traceparent = carrier.get(_tracing.HEADER)
        if traceparent is not None and span.get_span_context() == parent_span:
            # The no-op tracer (the API without an SDK) hands the parent back as the new
            # span; keep actorbus's promise of a fresh span id per publish.
            carrier[_tracing.HEADER] = _tracing.child_of(traceparent) or traceparent
        return carrier or headers

    @contextlib.contextmanager
    def handling(self, envelope: Envelope, actor: str) -> Generator[Span]:
        """A CONSUMER span ``handle <type>``, current while the actor handles `envelope`.

        Its parent is the span in the envelope's ``traceparent`` (none: a new trace). An
        exception that ends the handling (STOP, FAIL_FAST, escalation) is recorded on it
        and sets its status to ERROR; cancellation is not an error.
        """
        parent = self._propagator.extract(envelope.headers, context=otel_context.Context())
        span = self._tracer.start_span(
            f"handle {envelope.type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.operation.type": "process",
                "messaging.operation.name": "handle",
                "messaging.destination.name": envelope.type,
                "messaging.message.id": envelope.id,
                "actorbus.actor": actor,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        handling = _Handling(span)
        marker = _handling.set(handling)
        try:
            yield span
        except LoopExit as leaving:
            if leaving.error is not None:
                handling.record(leaving.error)
            raise
        finally:
            _handling.reset(marker)
            otel_context.detach(token)
            span.end()

    def failed(self, error: Exception) -> None:
        """Record a handler's exception on the span of the message being handled."""
        handling = _handling.get()
        if handling is not None:
            handling.record(error)


def instrument(*, tracer_provider: TracerProvider | None = None) -> OpenTelemetryInstrumentation:
    """Open OpenTelemetry spans for every publish and every handled message, process-wide.

    It applies to every `ActorSystem` of the process, running or not, from the next
    publish on. Calling it again replaces the previous instrumentation.

    Args:
        tracer_provider: Where spans go; the global tracer provider when None. Tests pass
            their own (the global one can be set only once per process).

    Returns:
        The installed instrumentation.
    """
    hooks = OpenTelemetryInstrumentation(tracer_provider)
    _tracing.install(hooks)
    return hooks


def uninstrument() -> None:
    """Stop opening spans; plain ``traceparent`` propagation goes on (a no-op if not on)."""
    if isinstance(_tracing.instrumentation, OpenTelemetryInstrumentation):
        _tracing.install(None)
