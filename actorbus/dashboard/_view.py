"""What the dashboard shows of one instance, built from its snapshots: rates, sparklines, tree.

`History` turns successive snapshots into rates (messages per second) and keeps the
last `POINTS` of them per actor kind, per entity kind (and per actor, for up to
`TRACKED_ACTORS` actors), so a page opened now shows the last minutes at once.
`instance_view` makes the JSON-ready view of one instance that the page, ``actorbus
top`` and the report to Redis share. It stays small with 10,000 actors or entities:
actors are aggregated by kind (their class, or their function; an entity kind's
entities under the kind's name), each kind lists only its `TOP_PER_KIND` busiest
actors, and the tree folds siblings of one kind into one node with their count.
`app_state` adds the streams and the partition → owner map.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Final

import attrs

from actorbus.dashboard._snapshot import SHARD

if TYPE_CHECKING:
    from actorbus._transport import PartitionOwner
    from actorbus.dashboard._snapshot import ActorRow, Snapshot, TransportStatus

__all__ = [
    "FOLD_OVER",
    "MAX_KINDS",
    "MAX_NODES",
    "POINTS",
    "TOP_PER_KIND",
    "TRACKED_ACTORS",
    "History",
    "app_state",
    "instance_view",
]

POINTS: Final = 120
"""Rates kept per kind and per tracked actor: the sparklines' length (one per sample)."""
TRACKED_ACTORS: Final = 1000
"""Actors whose rate history is kept (the first seen); the others show their rate only."""
TOP_PER_KIND: Final = 20
"""The busiest actors of each kind listed in the view (the drill-down)."""
MAX_KINDS: Final = 100
"""Kinds listed in the view (the busiest); the rest are counted."""
FOLD_OVER: Final = 8
"""Siblings of one kind beyond this number are one node of the tree, with their count."""
MAX_NODES: Final = 400
"""Tree nodes in the view; the rest are counted."""


@attrs.define
class _Rates:
    """The rates of one sample: per actor, per kind, and per entity kind."""

    actors: dict[str, float]
    kinds: dict[str, float]
    entity_kinds: dict[str, float] = attrs.field(factory=dict[str, float])


class History:
    """The message rates of the last `POINTS` samples, per kind and per tracked actor."""

    def __init__(self) -> None:
        self._taken: float | None = None
        self._processed: dict[str, int] = {}
        self._entity_processed: dict[str, int] = {}
        self.kinds: dict[str, collections.deque[float]] = {}
        self.actors: dict[str, collections.deque[float]] = {}
        self.entity_kinds: dict[str, collections.deque[float]] = {}

    def add(self, snapshot: Snapshot) -> _Rates:
        """Take in a snapshot; return its rates (0 for everything on the first one)."""
        elapsed = 0.0 if self._taken is None else snapshot.taken - self._taken
        self._taken = snapshot.taken
        now: dict[str, int] = {}
        actor_rates: dict[str, float] = {}
        kind_rates: dict[str, float] = {}
        for row in snapshot.actors:
            now[row.name] = row.processed
            rate = _rate(row.processed, self._processed.get(row.name), elapsed)
            actor_rates[row.name] = rate
            kind_rates[row.kind] = kind_rates.get(row.kind, 0.0) + rate
        self._processed = now
        # An entity kind's rate comes from its own counter, which keeps what its stopped
        # entities processed: entities come and go, the kind's count only grows.
        entity_rates = {
            row.kind: _rate(row.processed, self._entity_processed.get(row.kind), elapsed)
            for row in snapshot.entities
        }
        self._entity_processed = {row.kind: row.processed for row in snapshot.entities}
        _append(self.kinds, kind_rates, None)
        _append(self.actors, actor_rates, TRACKED_ACTORS)
        _append(self.entity_kinds, entity_rates, None)
        return _Rates(actor_rates, kind_rates, entity_rates)


def _rate(processed: int, last: int | None, elapsed: float) -> float:
    if elapsed <= 0:
        return 0.0
    # A new actor (or one restarted under the same name) is counted from 0.
    done = processed if last is None or processed < last else processed - last
    return done / elapsed


def _append(
    series: dict[str, collections.deque[float]], rates: dict[str, float], limit: int | None
) -> None:
    for gone in series.keys() - rates.keys():
        del series[gone]
    for name, rate in rates.items():
        found = series.get(name)
        if found is None:
            if limit is not None and len(series) >= limit:
                continue
            found = series[name] = collections.deque(maxlen=POINTS)
        found.append(rate)


def _spark(series: collections.deque[float] | None) -> list[float]:
    return [] if series is None else [round(rate, 1) for rate in series]


def instance_view(
    snapshot: Snapshot, rates: _Rates, history: History, *, actor_sparks: bool = True
) -> dict[str, Any]:
    """The JSON-ready view of one instance (``actor_sparks=False``: a smaller report)."""
    by_kind: dict[str, list[ActorRow]] = {}
    for row in snapshot.actors:
        if row.role != SHARD:  # an entity kind's own actor: shown with its entities
            by_kind.setdefault(row.kind, []).append(row)
    kinds: list[dict[str, Any]] = []
    for kind, rows in by_kind.items():
        busiest = sorted(
            rows, key=lambda r: (-rates.actors.get(r.name, 0.0), -r.depth, -r.failed, r.name)
        )[:TOP_PER_KIND]
        kinds.append(
            {
                "kind": kind,
                "role": rows[0].role,
                "count": len(rows),
                "rate": round(rates.kinds.get(kind, 0.0), 2),
                "spark": _spark(history.kinds.get(kind)),
                **_sums(rows),
                "actors": [
                    _actor(row, rates, history if actor_sparks else None) for row in busiest
                ],
            }
        )
    kinds.sort(key=lambda k: (-k["rate"], -k["depth"], k["kind"]))
    tree, shown = _tree(snapshot.actors)
    return {
        "app": snapshot.app,
        "instance": snapshot.instance,
        "host": snapshot.host,
        "pid": snapshot.pid,
        "backend": snapshot.backend,
        "transport": snapshot.transport,
        "taken": snapshot.taken,
        "totals": {
            "actors": len(snapshot.actors),
            "kinds": len(kinds),
            "rate": round(sum(rates.actors.values()), 2),
            **_sums(snapshot.actors),
        },
        "kinds": kinds[:MAX_KINDS],
        "kinds_more": max(0, len(kinds) - MAX_KINDS),
        "tree": tree,
        "tree_more": max(0, len(snapshot.actors) - shown),
        "entities": [
            {
                **attrs.asdict(row),
                "partitions": list(row.partitions),
                "rate": round(rates.entity_kinds.get(row.kind, 0.0), 2),
                "spark": _spark(history.entity_kinds.get(row.kind)),
            }
            for row in snapshot.entities
        ],
        "letters": [attrs.asdict(row) for row in snapshot.letters],
    }


def app_state(
    app: str,
    instances: list[dict[str, Any]],
    status: TransportStatus,
    *,
    source: str,
) -> dict[str, Any]:
    """What the page and ``actorbus top`` read: every instance, the streams, the partitions."""
    return {
        "app": app,
        "source": source,
        "instances": instances,
        "streams": [attrs.asdict(stream) for stream in status.streams],
        "partitions": None if status.partitions is None else _partitions(status.partitions),
        "transport_error": status.error,
    }


def _partitions(owners: dict[str, dict[int, PartitionOwner]]) -> list[dict[str, Any]]:
    """Per group: each partition's owner and fencing token, and each owner's share."""
    groups: list[dict[str, Any]] = []
    for group, partitions in sorted(owners.items()):
        shares = collections.Counter(owner.instance for owner in partitions.values())
        groups.append(
            {
                "group": group,
                "partitions": [
                    {"partition": partition, "owner": owner.instance, "token": owner.token}
                    for partition, owner in sorted(partitions.items())
                ],
                "owners": [
                    {"owner": instance, "count": count}
                    for instance, count in sorted(
                        shares.items(), key=lambda item: (item[0] is None, item[0] or "")
                    )
                ],
            }
        )
    return groups


def _sums(rows: list[ActorRow] | tuple[ActorRow, ...]) -> dict[str, int]:
    sums = {"processed": 0, "failed": 0, "restarts": 0, "dropped": 0, "depth": 0, "capacity": 0}
    for row in rows:
        sums["processed"] += row.processed
        sums["failed"] += row.failed
        sums["restarts"] += row.restarts
        sums["dropped"] += row.dropped
        sums["depth"] += row.depth
        sums["capacity"] += row.capacity
    return sums


def _actor(row: ActorRow, rates: _Rates, history: History | None) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "parent": row.parent,
        "rate": round(rates.actors.get(row.name, 0.0), 2),
        "spark": [] if history is None else _spark(history.actors.get(row.name)),
        "processed": row.processed,
        "failed": row.failed,
        "restarts": row.restarts,
        "dropped": row.dropped,
        "depth": row.depth,
        "capacity": row.capacity,
    }


def _tree(rows: tuple[ActorRow, ...]) -> tuple[list[dict[str, Any]], int]:
    """The supervision tree (siblings of one kind folded past `FOLD_OVER`); nodes shown."""
    children: dict[str | None, list[ActorRow]] = {}
    for row in rows:
        children.setdefault(row.parent, []).append(row)
    budget = [MAX_NODES]
    shown = [0]

    def level(parent: str | None) -> list[dict[str, Any]]:
        siblings = children.get(parent, [])
        counts = collections.Counter(row.kind for row in siblings)
        nodes: list[dict[str, Any]] = []
        folded: set[str] = set()
        for row in siblings:
            if budget[0] <= 0:
                break
            if counts[row.kind] > FOLD_OVER:
                if row.kind not in folded:
                    folded.add(row.kind)
                    budget[0] -= 1
                    members = [r for r in siblings if r.kind == row.kind]
                    shown[0] += len(members)
                    nodes.append(
                        {
                            "fold": row.kind,
                            "role": row.role,
                            "count": counts[row.kind],
                            "depth": sum(r.depth for r in members),
                            "children": sum(len(children.get(r.name, ())) for r in members),
                        }
                    )
                continue
            budget[0] -= 1
            shown[0] += 1
            nodes.append(
                {
                    "name": row.name,
                    "kind": row.kind,
                    "role": row.role,
                    "depth": row.depth,
                    "capacity": row.capacity,
                    "children": level(row.name),
                }
            )
        return nodes

    tree = level(None)
    return tree, shown[0]
