"""Prometheus metrics from `ActorSystem.stats()`: per-actor counters, depth and latency.

`collector` registers a custom collector that reads the system's counters at each scrape,
so nothing is counted twice and the hot path pays nothing::

    from prometheus_client import start_http_server

    from actorbus.contrib.prometheus import collector

    system = ActorSystem("shop", actors=[Inventory])
    collector(system)            # on prometheus_client.REGISTRY
    start_http_server(9100)      # serving the registry is up to you

Each series carries the label ``actor`` (the actor's name). Counters start at zero when the
system starts; a stopped actor's series disappear.

A collector reads its system through a weak reference: a registry (the global one lives as
long as the process) does not keep a finished system alive. Once that system has stopped,
or is gone, `collector` on the same registry replaces its collector, so a process that
builds a new system (a worker restarted in place, a system per test) registers again
without unregistering first.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Final

try:
    from prometheus_client import REGISTRY
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.samples import Sample
except ImportError as _missing:  # the extra is not installed
    msg = "actorbus.contrib.prometheus needs prometheus-client: pip install 'actorbus[prometheus]'"
    raise ImportError(msg) from _missing

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client.registry import CollectorRegistry

    from actorbus._records import ActorStats
    from actorbus._system import ActorSystem

from actorbus._system import has_stopped

__all__ = ["ActorSystemCollector", "collector"]

_LABELS: Final = ("actor",)
# (metric name, help, the ActorStats field) for every counter.
_COUNTERS: Final[tuple[tuple[str, str, Callable[[ActorStats], int]], ...]] = (
    (
        "actorbus_messages_processed",
        "Messages the actor handled, whatever the outcome.",
        lambda s: s.processed,
    ),
    (
        "actorbus_handler_failures",
        "Handler calls that raised, whatever the supervision policy (retries included).",
        lambda s: s.failed,
    ),
    (
        "actorbus_handler_retries",
        "Handler calls repeated by the RETRY policy.",
        lambda s: s.retries,
    ),
    ("actorbus_actor_restarts", "Times the actor was restarted.", lambda s: s.restarts),
    (
        "actorbus_messages_dropped",
        "Messages the actor's full mailbox dropped.",
        lambda s: s.dropped,
    ),
    (
        "actorbus_messages_dead_lettered",
        "Messages the actor recorded as dead letters.",
        lambda s: s.dead_lettered,
    ),
)
_DEPTH: Final = ("actorbus_mailbox_depth", "Messages waiting in the actor's mailbox.")
_HANDLING: Final = (
    "actorbus_handling_seconds",
    "Seconds per handled message; the quantiles cover a sample of 256 recent messages.",
)
# A scrape from another thread (start_http_server) may meet an actor starting or stopping.
_ATTEMPTS: Final = 3


class ActorSystemCollector:
    """A Prometheus collector of one system's per-actor statistics.

    Reading the statistics never blocks and never waits for the system; it may run in the
    thread of `prometheus_client.start_http_server`.
    """

    def __init__(self, system: ActorSystem) -> None:
        self._system = weakref.ref(system)

    @property
    def system(self) -> ActorSystem | None:
        """The system read, or None once it was garbage-collected (no series then)."""
        return self._system()

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples (so registration does not read the system)."""
        counters, depth, handling = _families()
        yield from counters
        yield depth
        yield handling

    def collect(self) -> Iterator[Metric]:
        """The metric families with one sample per running actor (a summary: several)."""
        stats = self._snapshot()
        counters, depth, handling = _families()
        for name, record in sorted(stats.items()):
            labels = [name]
            for family, (_, _, field) in zip(counters, _COUNTERS, strict=True):
                family.add_metric(labels, field(record))
            depth.add_metric(labels, record.depth)
            handling.add_metric(labels, record.processed, record.handling_time)
            for quantile, value in (("0.5", record.handling_p50), ("0.99", record.handling_p99)):
                handling.samples.append(
                    Sample(handling.name, {"actor": name, "quantile": quantile}, value)
                )
        yield from counters
        yield depth
        yield handling

    def _snapshot(self) -> dict[str, ActorStats]:
        system = self._system()
        if system is None:
            return {}
        for _ in range(_ATTEMPTS - 1):
            try:
                return system.stats()
            except RuntimeError:  # "dictionary changed size during iteration": try again
                continue
        return system.stats()


def _families() -> tuple[list[CounterMetricFamily], GaugeMetricFamily, SummaryMetricFamily]:
    counters = [
        CounterMetricFamily(name, documentation, labels=_LABELS)
        for name, documentation, _ in _COUNTERS
    ]
    depth = GaugeMetricFamily(*_DEPTH, labels=_LABELS)
    handling = SummaryMetricFamily(*_HANDLING, labels=_LABELS)
    return counters, depth, handling


def collector(
    system: ActorSystem, *, registry: CollectorRegistry | None = REGISTRY
) -> ActorSystemCollector:
    """Export `system`'s per-actor statistics to Prometheus.

    The metrics, each labelled with ``actor``:

    - ``actorbus_messages_processed_total``, ``actorbus_handler_failures_total``,
      ``actorbus_handler_retries_total``, ``actorbus_actor_restarts_total``,
      ``actorbus_messages_dropped_total``, ``actorbus_messages_dead_lettered_total``
      (counters);
    - ``actorbus_mailbox_depth`` (a gauge);
    - ``actorbus_handling_seconds`` (a summary: ``_count`` and ``_sum`` over every message,
      and the ``quantile="0.5"`` and ``"0.99"`` series over a sample of 256 recent
      messages per actor).

    Serving the registry (``prometheus_client.start_http_server``, or a route of your web
    application) is up to you.

    The collector holds `system` weakly (keep your own reference). A collector that this
    function registered on `registry` earlier is replaced when its system has stopped or
    is gone.

    Args:
        system: The system to read; it may be started later.
        registry: Where to register the collector; None leaves it unregistered.

    Returns:
        The collector (``registry.unregister(it)`` removes it).

    Raises:
        ValueError: If the registry already has these metrics for a system that has not
            stopped (one collector per registry; use a registry per system to export
            several at once).
    """
    found = ActorSystemCollector(system)
    if registry is None:
        return found
    try:
        previous = _registered.get(registry)
    except TypeError:  # a registry-like object without weak references: not tracked
        registry.register(found)
        return found
    if previous is not None and _replaceable(previous):
        with contextlib.suppress(KeyError):  # unless it was unregistered already
            registry.unregister(previous)
    registry.register(found)
    _registered[registry] = found
    return found


def _replaceable(collector: ActorSystemCollector) -> bool:
    """Whether a collector's system has stopped or is gone: it will have no series again."""
    system = collector.system
    return system is None or has_stopped(system)


_registered: Final[weakref.WeakKeyDictionary[CollectorRegistry, ActorSystemCollector]] = (
    weakref.WeakKeyDictionary()
)
"""The collector `collector` last registered on each registry."""
