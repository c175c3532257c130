"""`@handle`: declare which events a method (or function) handles, and how to call it.

Each handler is analysed once, when its class (or router) is built: its targets (classes
matched by isinstance, globs matched against the envelope type), its group, and a call
plan saying what to pass (the event, the envelope, both, or the positional arguments of
an ad-hoc event). The actor loop then only looks handlers up in a per-class cache.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, Union, cast

import anyio.to_thread

from ._convert import structure
from ._envelope import Envelope
from ._events import INFO_ATTRIBUTE, lookup, type_name
from ._exceptions import DecodeError

__all__ = ["TABLE_ATTRIBUTE", "AdHoc", "HandlerSpec", "HandlerTable", "handle", "spec_for"]

F = TypeVar("F", bound=Callable[..., Any])

_DECLARATION: Final = "__actorbus_handle__"
TABLE_ATTRIBUTE: Final = "__actorbus_table__"
"""The class attribute holding an actor class's `HandlerTable` (set by `Actor`)."""
ANY_GROUP: Final = object()
# Lookup caches are keyed by type strings, which may come from the wire: cap them.
CACHE_LIMIT: Final = 4096


class AdHoc:
    """The payload of an event emitted without a class: positional and keyword arguments."""

    __slots__ = ("args", "kwargs")

    def __init__(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.args = args
        self.kwargs = dict(kwargs)

    def to_data(self) -> dict[str, Any]:
        """The JSON-ready form carried in `Envelope.data`."""
        return {"args": list(self.args), "kwargs": self.kwargs}

    @classmethod
    def from_data(cls, data: object) -> AdHoc | None:
        """Recognise the data of an ad-hoc event; None if `data` has another shape."""
        if isinstance(data, Mapping) and set(cast("Mapping[str, Any]", data)) == {"args", "kwargs"}:
            fields = cast("Mapping[str, Any]", data)
            args, kwargs = fields["args"], fields["kwargs"]
            if isinstance(args, list) and isinstance(kwargs, Mapping):
                positional = cast("list[Any]", args)
                named = cast("Mapping[Any, Any]", kwargs)
                return cls(tuple(positional), {str(k): v for k, v in named.items()})
        return None

    def __repr__(self) -> str:
        return f"AdHoc(args={self.args!r}, kwargs={self.kwargs!r})"


class _Pass(enum.Enum):
    NOTHING = "nothing"
    EVENT = "event"
    ENVELOPE = "envelope"
    EVENT_ENVELOPE = "event, envelope"
    ENVELOPE_EVENT = "envelope, event"
    SPREAD = "*args"  # unannotated parameters: ad-hoc events are spread, others passed whole


class _Declaration:
    __slots__ = ("group", "inline", "targets")

    def __init__(self, targets: tuple[object, ...], group: str | None, inline: bool) -> None:
        self.targets = targets
        self.group = group
        self.inline = inline


def handle(
    *targets: type[Any] | str, group: str | None = None, inline: bool = False
) -> Callable[[F], F]:
    """Mark an actor method as the handler of some events.

    Args:
        *targets: Event classes (matched by isinstance, so subclasses too) and/or globs
            over the envelope type (``"order.*"``, or an exact type). With no target, the
            class comes from the annotation of the handler's event parameter.
        group: A competing-consumer group: each event is handled by one member of the
            group — across all instances for APP events with a transport, and among the
            local members (in turn) otherwise. Defaults to the actor's group.
        inline: Call a *sync* handler directly on the event loop instead of in a worker
            thread. Only for handlers that return quickly and never block.

    The handler receives the event; a parameter annotated `Envelope` receives the
    envelope instead (or as a second parameter). Its return value is the reply to `ask`.
    """
    for target in targets:
        if not isinstance(target, str | type):
            msg = f"@handle takes event classes or type globs, got {target!r}"
            raise TypeError(msg)
        if isinstance(target, str) and not target:
            msg = "@handle glob must be a non-empty string such as 'order.*'"
            raise ValueError(msg)

    def mark(func: F) -> F:
        if not callable(func):
            msg = f"@handle decorates a method or function, got {func!r}"
            raise TypeError(msg)
        setattr(func, _DECLARATION, _Declaration(targets, group, inline))
        return func

    return mark


def declaration(obj: object) -> _Declaration | None:
    """The `@handle` declaration on `obj`, if any."""
    found = getattr(obj, _DECLARATION, None)
    return found if isinstance(found, _Declaration) else None


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:
        # Unresolvable forward references: fall back to the raw annotations, and treat
        # the strings we can recognise ourselves.
        raw: dict[str, Any] = dict(getattr(func, "__annotations__", {}))
        for key, value in raw.items():
            if value == "Envelope":
                raw[key] = Envelope
            elif isinstance(value, str) and (found := lookup(value)) is not None:
                raw[key] = found
        return raw


def _required_positional(params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """The parameters an event or an envelope can be passed to (positional, no default)."""
    return [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]


def _is_event_class(annotation: object) -> bool:
    # Builtins (str, int, list, ...) are an ad-hoc event's argument types, not event classes.
    return (
        isinstance(annotation, type)
        and annotation is not Any  # a class since Python 3.11
        and annotation.__module__ != "builtins"
    )


def _classes_of(annotation: object) -> tuple[type[Any], ...] | None:
    """The event classes an annotation names (a class or a union of classes), else None."""
    if _is_event_class(annotation):
        return (annotation,)  # type: ignore[return-value]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        found = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        if found and all(_is_event_class(a) for a in found):
            return found
    return None


class HandlerSpec:
    """One analysed handler: what it matches and how to call it."""

    __slots__ = (
        "bound",
        "call",
        "classes",
        "convert_to",
        "event_only",
        "func",
        "globs",
        "group",
        "name",
        "needs_envelope",
        "passes",
        "patterns",
        "spreads",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        targets: tuple[object, ...],
        *,
        group: str | None,
        inline: bool,
        bound: bool,
        owner: str,
    ) -> None:
        self.func = func
        self.bound = bound
        self.group = group
        self.name = f"{owner}.{getattr(func, '__name__', repr(func))}" if bound else owner
        self.passes, event_annotation = self._plan(func, bound=bound)
        self.convert_to = _classes_of(event_annotation)
        if not targets:
            if self.convert_to is None:
                msg = (
                    f"@handle() on {self.name} has no target, and {self._why_no_class(func)}: "
                    "annotate the event parameter with the event class "
                    "(`event: OrderCreated`) or pass the class or a glob to @handle(...)"
                )
                raise TypeError(msg)
            targets = self.convert_to
        self.classes = tuple(t for t in targets if isinstance(t, type))
        self.globs = tuple(t for t in targets if isinstance(t, str))
        self.patterns = tuple(re.compile(fnmatch.translate(g)) for g in self.globs)
        self.call = self._caller(func, inline=inline)
        self.needs_envelope = self.passes in _WITH_ENVELOPE
        # The common shape, called without `arguments()`: the event alone, already an
        # instance of `convert_to` (the actor loop checks that with one isinstance).
        self.event_only = self.passes is _Pass.EVENT
        # Only ad-hoc events spread into keyword arguments (see `kwargs_for`).
        self.spreads = self.passes is _Pass.SPREAD

    def _why_no_class(self, func: Callable[..., Any]) -> str:
        """Why no event class could be inferred from the handler's parameters."""
        if self.passes is _Pass.NOTHING:
            return "it takes no event parameter to infer one from"
        hints = _hints(func)
        params = [
            p
            for p in _required_positional(
                list(inspect.signature(func).parameters.values())[1 if self.bound else 0 :]
            )
            if hints.get(p.name) is not Envelope
        ]
        if len(params) != 1:
            return "its parameters take an ad-hoc event's arguments, not one event"
        annotation = getattr(func, "__annotations__", {}).get(params[0].name)
        if annotation is None:
            return "its event parameter has no annotation to infer one from"
        if isinstance(hints.get(params[0].name, annotation), str):  # left unresolved
            return (
                f"its annotation {annotation!r} could not be resolved (a class defined "
                "inside a function, under `from __future__ import annotations`?)"
            )
        shown = hints.get(params[0].name, annotation)
        name = getattr(shown, "__qualname__", None) or repr(shown)
        return f"its annotation {name!r} is not an event class"

    def _plan(self, func: Callable[..., Any], *, bound: bool) -> tuple[_Pass, object]:
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            msg = f"cannot read the signature of handler {self.name}: {exc}"
            raise TypeError(msg) from exc
        hints = _hints(func)
        params = list(signature.parameters.values())
        if bound:
            params = params[1:]  # self
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return _Pass.SPREAD, None
        takes_keywords = any(p.kind is p.VAR_KEYWORD for p in params)
        params = _required_positional(params)
        names = [p.name for p in params]
        if takes_keywords and not params:
            return _Pass.SPREAD, None  # fn(**kwargs): an ad-hoc event's keyword arguments
        annotations = [hints.get(name) for name in names]
        if len(params) > 2 or (len(params) == 2 and Envelope not in annotations):  # noqa: PLR2004
            if Envelope in annotations or any(_classes_of(a) for a in annotations):
                msg = (
                    f"handler {self.name} takes ({', '.join(names)}); a handler takes the "
                    "event, the envelope (a parameter annotated Envelope), or both"
                )
                raise TypeError(msg)
            return _Pass.SPREAD, None  # several plain parameters: an ad-hoc event's arguments
        return self._plan_event(params, hints)

    def _plan_event(
        self, params: list[inspect.Parameter], hints: dict[str, Any]
    ) -> tuple[_Pass, object]:
        kinds = [hints.get(p.name) is Envelope for p in params]
        if not params:
            return _Pass.NOTHING, None
        if len(params) == 1:
            annotation = hints.get(params[0].name)
            if kinds[0]:
                return _Pass.ENVELOPE, None
            if _classes_of(annotation) is not None:
                return _Pass.EVENT, annotation
            return _Pass.SPREAD, None  # unannotated, Any, builtins: passed through or spread
        if kinds == [False, True]:
            return _Pass.EVENT_ENVELOPE, hints.get(params[0].name)
        if kinds == [True, False]:
            return _Pass.ENVELOPE_EVENT, hints.get(params[1].name)
        msg = (
            f"handler {self.name} takes two parameters, so exactly one of them must be "
            "annotated Envelope (the other receives the event)"
        )
        raise TypeError(msg)

    @staticmethod
    def _caller(func: Callable[..., Any], *, inline: bool) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - async callable objects
        ):
            return func
        if inline:

            async def call_inline(*args: Any, **kwargs: Any) -> Any:
                return func(*args, **kwargs)

            return call_inline

        async def call_in_thread(*args: Any, **kwargs: Any) -> Any:
            return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))

        return call_in_thread

    def matches(self, cls: type[Any] | None, type_: str) -> bool:
        """Whether an event of class `cls` (None: plain data) and type `type_` matches."""
        if cls is not None and self.classes and issubclass(cls, self.classes):
            return True
        return any(p.match(type_) for p in self.patterns)

    def subscriptions(self) -> list[str]:
        """What this handler subscribes to, by event type or glob (for listings)."""
        return [type_name(c) for c in self.classes] + list(self.globs)

    def arguments(
        self, event: object, envelope: Envelope | None, type_: str, where: object
    ) -> tuple[Any, ...]:
        """The positional arguments for one call (converting the event when needed).

        `envelope` may be None when `needs_envelope` is false; `where` names the actor in
        error messages.

        Raises:
            DecodeError: If the event cannot be converted to the annotated class.
        """
        passes = self.passes
        if passes is _Pass.SPREAD:
            if isinstance(event, AdHoc):
                return event.args  # kwargs are applied by `invoke`
            return (event,)
        if passes is _Pass.NOTHING:
            return ()
        if passes is _Pass.ENVELOPE:
            return (envelope,)
        converted = self._convert(event, type_, where)
        if passes is _Pass.EVENT:
            return (converted,)
        if passes is _Pass.EVENT_ENVELOPE:
            return (converted, envelope)
        return (envelope, converted)

    def _convert(self, event: object, type_: str, where: object) -> object:
        classes = self.convert_to
        if classes is None or isinstance(event, classes):
            return event
        target = classes[0]
        place = f"{where} handler {self.name} (event {type_!r})"
        if isinstance(event, AdHoc):
            try:
                return target(*event.args, **event.kwargs)
            except TypeError as exc:
                msg = (
                    f"{place}: cannot build {target.__qualname__} from the emitted arguments: {exc}"
                )
                raise DecodeError(msg) from exc
        if isinstance(event, Mapping):
            return structure(cast("Mapping[str, Any]", event), target, where=place)
        msg = f"{place} expects {target.__qualname__} but got a {type(event).__qualname__}"
        raise DecodeError(msg)

    def kwargs_for(self, event: object) -> Mapping[str, Any]:
        """Keyword arguments for one call: only ad-hoc events spread into keywords."""
        if self.passes is _Pass.SPREAD and isinstance(event, AdHoc):
            return event.kwargs
        return _NO_KWARGS


_NO_KWARGS: Final[Mapping[str, Any]] = types.MappingProxyType({})
_WITH_ENVELOPE: Final = frozenset({_Pass.ENVELOPE, _Pass.EVENT_ENVELOPE, _Pass.ENVELOPE_EVENT})


class HandlerTable:
    """The handlers of one actor class (or one function), with a lookup cache."""

    __slots__ = ("_cache", "_tells", "specs")

    def __init__(self, specs: tuple[HandlerSpec, ...]) -> None:
        self.specs: tuple[HandlerSpec, ...] = specs
        self._cache: dict[tuple[Any, ...], tuple[HandlerSpec, ...]] = {}
        self._tells: dict[type[Any], tuple[str, tuple[HandlerSpec, ...]]] = {}

    def handles_class(self, cls: type[Any]) -> bool:
        """Whether some handler names `cls` (or a base class of it) explicitly."""
        return any(spec.classes and issubclass(cls, spec.classes) for spec in self.specs)

    def match(
        self,
        cls: type[Any] | None,
        type_: str,
        group: object = ANY_GROUP,
        default: str | None = None,
    ) -> tuple[HandlerSpec, ...]:
        """The handlers for an event, in declaration order; cached per class and type.

        `group` selects the handlers of one delivery (None: the broadcast ones) and
        `default` is the actor's own group, used by handlers that name none.
        """
        key = (cls, type_, group, default)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()  # type strings come from the wire too: stay bounded
            found = tuple(
                s
                for s in self.specs
                if s.matches(cls, type_)
                and (group is ANY_GROUP or (s.group if s.group is not None else default) == group)
            )
            self._cache[key] = found
        return found

    def for_tell(self, cls: type[Any]) -> tuple[str, tuple[HandlerSpec, ...]]:
        """(event type, handlers) for an object of class `cls` sent with `tell`; cached.

        The type is the `@event` type, or the class's qualified name for other objects
        (not cached: `@event` may still register the class later).
        """
        found = self._tells.get(cls)
        if found is None:
            info = cls.__dict__.get(INFO_ATTRIBUTE)
            if info is None:
                return cls.__qualname__, self.match(cls, cls.__qualname__)
            if len(self._tells) >= CACHE_LIMIT:
                self._tells.clear()
            found = self._tells[cls] = (info.type, self.match(cls, info.type))
        return found


def spec_for(
    func: Callable[..., Any], targets: tuple[object, ...], *, group: str | None, inline: bool
) -> HandlerSpec:
    """Analyse a plain function subscriber (not a method)."""
    name = getattr(func, "__qualname__", None) or repr(func)
    return HandlerSpec(func, targets, group=group, inline=inline, bound=False, owner=name)
