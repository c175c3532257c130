"""What a system declares, read without starting it: its subscriptions and its transport.

This is the one module that reads the runtime's internals on behalf of the AsyncAPI
generator (the start-up actors and routers of an `ActorSystem`, their handler tables,
the Redis transport's key layout). Everything else works on the plain records made here,
so a change in the runtime only needs a change here.
"""

from __future__ import annotations

import sys
import typing
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from ._actor import Actor
from ._handlers import HandlerSpec, declaration, spec_for
from ._sharding import kind_of
from ._system import startup_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._mailbox import Mailbox
    from ._supervision import Supervision
    from ._system import ActorSystem

__all__ = [
    "NOT_ANNOTATED",
    "PARTITION_PARAMETER",
    "EntityInfo",
    "Layout",
    "Server",
    "Subscription",
    "layout",
    "subscriptions",
]

_WILDCARDS: Final = frozenset("*?[")
NOT_ANNOTATED: Final = object()
"""The `Subscription.returns` of a handler without a return annotation."""
_NO_SETTINGS: Final[dict[str, Any]] = {}
PARTITION_PARAMETER: Final = "partition"
"""The parameter of the partitioned events stream's address (`Layout.events`)."""


@attrs.frozen
class EntityInfo:
    """The entity kind a handler belongs to.

    Attributes:
        kind: The kind's name (its group is ``entity:<kind>``).
        cls: The entity class.
        state: Its durable state's class (None: it keeps none).
        passivate_after: Seconds idle before an entity is stopped.
    """

    kind: str
    cls: type[Any]
    state: type[Any] | None
    passivate_after: float


@attrs.frozen
class Subscription:
    """One handler of one start-up actor (or router function), as declared.

    Attributes:
        actor: The name the actor gets when the system starts it.
        handler: The handler's name (``Inventory.reserve``, or a function's qualified name).
        func: The handler itself (for its docstring and return annotation).
        classes: Event classes it handles by isinstance.
        types: Exact type strings it subscribes to (globs without wildcards).
        globs: Globs with wildcards over the envelope type (``order.*``).
        group: Its competing-consumer group (None: broadcast).
        spreads: Whether it takes an ad-hoc event's arguments (``fn(*args, **kwargs)``).
        matches: Whether an event of a class (None: plain data) and type reaches it.
        returns: Its return annotation (`NOT_ANNOTATED` when it has none).
        entity: The entity kind it belongs to (None: an actor's or a function's).
        mailbox: Its actor's mailbox (None: the default one).
        supervision: Its actor's supervision (None: the default one).
    """

    actor: str
    handler: str
    func: Callable[..., Any]
    classes: tuple[type[Any], ...]
    types: tuple[str, ...]
    globs: tuple[str, ...]
    group: str | None
    spreads: bool
    matches: Callable[[type[Any] | None, str], bool]
    returns: object
    entity: EntityInfo | None = None
    mailbox: Mailbox | None = None
    supervision: Supervision | None = None


def subscriptions(system: ActorSystem) -> list[Subscription]:
    """The handlers of `system`'s start-up actors and routers, in start order.

    Actors spawned while the system runs are not declared anywhere, so they are not here.
    """
    found: list[Subscription] = []
    taken: dict[str, int] = {}

    def name_for(default: str) -> str:
        # The naming `spawn` applies to unnamed actors: "x", then "x-2", "x-3"...
        count = taken.get(default, 0) + 1
        taken[default] = count
        return default if count == 1 else f"{default}-{count}"

    actors, routers = startup_of(system)
    for declared in actors:
        actor = cast("Any", declared)  # an Actor subclass or a `@handle` function
        if (kind := kind_of(actor)) is not None:  # an entity kind: its group, by its name
            entity = EntityInfo(
                kind.name, kind.cls, kind.sharding.state, kind.sharding.passivate_after
            )
            found += [
                _record(kind.name, spec, kind.group, kind.mailbox, kind.supervision, entity)
                for spec in kind.table.specs
            ]
        elif isinstance(actor, type) and issubclass(actor, Actor):
            name = name_for(actor.__name__)
            found += [
                _record(name, spec, actor.group, actor.mailbox, actor.supervision)
                for spec in actor.__actorbus_table__.specs
            ]
        elif (marked := declaration(declared)) is not None:
            spec = spec_for(declared, marked.targets, group=marked.group, inline=marked.inline)
            name = name_for(getattr(declared, "__name__", "function"))
            found.append(_record(name, spec, None, None, None))
    for router in routers:
        for entry in router.entries:
            marked = declaration(entry.func)
            if marked is None:
                continue
            spec = spec_for(entry.func, marked.targets, group=marked.group, inline=marked.inline)
            default = str(getattr(entry.func, "__name__", "function"))
            name = entry.name if entry.name is not None else name_for(default)
            found.append(_record(name, spec, None, entry.mailbox, entry.supervision))
    return found


def _record(
    actor: str,
    spec: HandlerSpec,
    default_group: str | None,
    mailbox: Mailbox | None,
    supervision: Supervision | None,
    entity: EntityInfo | None = None,
) -> Subscription:
    exact = tuple(g for g in spec.globs if not _WILDCARDS & set(g))
    return Subscription(
        actor=actor,
        handler=spec.name,
        func=spec.func,
        classes=spec.classes,
        types=exact,
        globs=tuple(g for g in spec.globs if g not in exact),
        group=spec.group if spec.group is not None else default_group,
        spreads=spec.spreads,
        matches=spec.matches,
        returns=_return_annotation(spec.func),
        entity=entity,
        mailbox=mailbox,
        supervision=supervision,
    )


def _return_annotation(func: Callable[..., Any]) -> object:
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # an unresolvable forward reference: keep the raw annotations
        hints = dict(getattr(func, "__annotations__", {}))
    return hints.get("return", NOT_ANNOTATED)


@attrs.frozen
class Server:
    """Where a Redis transport connects, without any credential.

    Attributes:
        scheme: ``redis``, ``rediss`` (TLS) or ``unix``.
        host: ``host:port`` (``localhost`` for a Unix socket).
        path: The Unix socket's path, if any.
        database: The database number.
        authenticated: Whether the URL carries a password (AUTH).
    """

    scheme: str
    host: str
    path: str | None
    database: int
    authenticated: bool


@attrs.frozen
class Layout:
    """The streams a system's transport uses.

    Attributes:
        transport: The transport class's public path; None without a transport.
        server: The Redis server, for a Redis transport.
        events: The APP events stream's key (None: not a Redis transport). With
            partitions, the address of every partition stream, with the parameter
            ``{partition}`` (`PARTITION_PARAMETER`) for its hash tag in braces.
        partition_tags: With partitions, the value of ``{partition}`` of each partition,
            in partition order: its hash tag in braces (``{shop.p0.12}``).
        dead: The dead-letter stream's key.
        replies: The reply streams' key, with ``{instance}`` for the requester's name.
        broadcast_group: The consumer group of an instance's broadcast subscribers, with
            ``{instance}`` for its name.
        member_group: The consumer group of a competing-consumer group, with ``{group}``.
        partitions: How many streams the APP events are split into.
        settings: The transport settings that the document mentions.
    """

    transport: str | None
    server: Server | None = None
    events: str | None = None
    partition_tags: tuple[str, ...] = ()
    dead: str | None = None
    replies: str | None = None
    broadcast_group: str | None = None
    member_group: str | None = None
    partitions: int = 1
    settings: dict[str, Any] = attrs.field(factory=_NO_SETTINGS.copy)


def layout(system: ActorSystem) -> Layout:
    """The streams of `system`'s transport (nothing is connected or opened)."""
    transport = system.transport
    if transport is None:
        return Layout(transport=None)
    cls = type(transport)
    path = f"{cls.__module__}.{cls.__qualname__}"
    partitions = transport.partitions if isinstance(transport.partitions, int) else 1
    partitions = max(1, partitions)
    # Only a transport of the Redis extra has this layout; when that module was never
    # imported, the transport cannot be one of its classes (and it needs not be loaded).
    if "actorbus.redis" not in sys.modules:
        return Layout(transport=path, partitions=partitions)
    # The Redis extra is optional: imported here only when something imported it already.
    from .redis import RedisTransport  # noqa: PLC0415
    from .redis._config import Keys, broadcast_group, member_group  # noqa: PLC0415

    if not isinstance(transport, RedisTransport):
        return Layout(transport=path, partitions=partitions)

    keys = Keys(transport.prefix, system.name, partitions)
    settings = transport.settings
    events = keys.events
    tags: tuple[str, ...] = ()
    if partitions > 1:
        # Each partition's stream is `{base}{tag}:events`, its tag in braces (a Redis
        # Cluster hash tag): the braces are part of the parameter's value, since an
        # address cannot hold braces of its own.
        suffix = keys.events.removeprefix(keys.base)
        events = f"{keys.base}{{{PARTITION_PARAMETER}}}:{suffix}"
        tags = tuple(
            stream.removeprefix(keys.base).removesuffix(f":{suffix}") for stream in keys.streams
        )
    return Layout(
        transport="actorbus.redis.RedisTransport",
        server=_server(transport.url),
        events=events,
        partition_tags=tags,
        dead=keys.dead,
        replies=keys.replies("{instance}"),
        broadcast_group=broadcast_group("{instance}"),
        member_group=member_group("{group}"),
        partitions=partitions,
        settings={
            "claim_after": settings.claim_after,
            "max_deliveries": settings.max_deliveries,
            "maxlen": settings.maxlen,
            "dead_maxlen": settings.dead_maxlen,
            "max_message_bytes": settings.max_message_bytes,
            "lease": settings.lease,
        },
    )


def _server(url: str) -> Server:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    database = int((query.get("db") or ["0"])[0])
    if parts.scheme == "unix":
        return Server(
            "unix", "localhost", unquote(parts.path), database, parts.password is not None
        )
    if parts.path.strip("/"):
        database = int(parts.path.strip("/"))
    host = parts.hostname or "localhost"
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return Server(
        parts.scheme, f"{host}:{parts.port or 6379}", None, database, parts.password is not None
    )
