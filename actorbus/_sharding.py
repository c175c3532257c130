"""`Sharding`: what makes an `Actor` class an entity kind, and what follows from it.

An entity kind is an actor class with one live instance per key (an account, an order)
across every instance of the application. `Sharding` holds its settings; `EntityKind`
is what the runtime derives from the class once, when the class is defined: its name
(which also names its consumer group and its stored states), its handlers, mailbox and
supervision.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._handlers import TABLE_ATTRIBUTE
from ._mailbox import Mailbox
from ._supervision import Policy, Supervision

if TYPE_CHECKING:
    from ._handlers import HandlerTable

__all__ = [
    "GROUP_PREFIX",
    "KIND_ATTRIBUTE",
    "EntityKind",
    "Sharding",
    "declare_kind",
    "is_entity_group",
    "kind_of",
]

KIND_ATTRIBUTE: Final = "__actorbus_kind__"
"""The class attribute holding an entity kind's `EntityKind` (set when it is defined)."""

GROUP_PREFIX: Final = "entity:"
"""An entity kind's consumer group is this prefix followed by the kind's name."""


def is_entity_group(group: str) -> bool:
    """Whether `group` is an entity kind's consumer group (``entity:<name>``).

    Transports give such a group partition ownership even when they have one partition:
    its members keep state per key, so one member at a time may hold a partition.
    """
    return group.startswith(GROUP_PREFIX)


_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _state_class(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, type) or not (attrs.has(value) or dataclasses.is_dataclass(value)):
        msg = (
            f"Sharding({attribute.name}=...) takes an attrs class or a dataclass (built with "
            f"no arguments for a key that has no state yet), got {value!r}"
        )
        raise TypeError(msg)


def _passivate_after(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        msg = f"Sharding({attribute.name}=...) takes seconds > 0 (math.inf: never), got {value!r}"
        raise ValueError(msg)


def _name(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not _NAME.fullmatch(value)):
        msg = (
            f"Sharding({attribute.name}=...) takes 1-100 ASCII letters, digits, '_', '.' or "
            f"'-', starting with a letter or digit, got {value!r}"
        )
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class Sharding:
    """Makes an `Actor` subclass an entity kind: one live instance per key, anywhere.

    Set it as the class attribute ``sharding``. The system builds the entity of a key
    on demand, as ``Kind(key)``, in the instance that owns the key's partition, and
    stops it (`on_stop`) once it has been idle for `passivate_after` seconds.

    Attributes:
        state: An attrs class or dataclass: each entity's durable state, as
            ``self.state``, loaded when the entity is built (``state()`` for a key that
            has none) and committed after each message it handled, with the message's
            acknowledgement. None: the kind keeps no state of its own.
        passivate_after: Seconds without a message after which an entity is stopped
            (``math.inf``: never); it is built again, with its state, on its next message.
        mailbox: Each entity's mailbox; the class's ``mailbox``, else `Mailbox()`, when
            None.
        name: The kind's name: it names the kind's consumer group (``entity:<name>``)
            and its stored states, so renaming the class must not change it. The class's
            ``__name__`` when None.
    """

    state: type[Any] | None = attrs.field(default=None, validator=_state_class)
    passivate_after: float = attrs.field(default=300.0, validator=_passivate_after)
    mailbox: Mailbox | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Mailbox))
    )
    name: str | None = attrs.field(default=None, validator=_name)


@attrs.frozen
class EntityKind:
    """What the runtime needs of an entity kind, derived once from its class.

    Attributes:
        cls: The entity class.
        name: The kind's name (`Sharding.name`, else the class's ``__name__``).
        group: Its consumer group, ``entity:<name>``.
        sharding: Its settings.
        table: Its handlers.
        mailbox: Each entity's mailbox settings.
        supervision: Each entity's supervision (the class's).
        takes_key: Whether the class defines ``__init__`` (it is built as ``cls(key)``,
            else as ``cls()``; its key is ``self.key`` either way).
        shard_supervision: What the kind's shard does when an entity escalates: a
            FAIL_FAST escalates further, anything else leaves that entity stopped (the
            next message for its key builds it again).
    """

    cls: type[Any]
    name: str
    group: str
    sharding: Sharding
    table: HandlerTable
    mailbox: Mailbox
    supervision: Supervision
    shard_supervision: Supervision
    takes_key: bool

    @property
    def passivates(self) -> bool:
        """Whether idle entities are ever stopped."""
        return not math.isinf(self.sharding.passivate_after)


def declare_kind(cls: type[Any], sharding: Sharding) -> EntityKind:
    """Check an entity class and record its `EntityKind` on it (see `kind_of`).

    Raises:
        TypeError: If the class or one of its handlers names a group (a kind is its own
            group), or its ``mailbox`` or ``supervision`` is of the wrong type.
        ValueError: If its name (the class's ``__name__`` by default) is not a valid
            kind name.
    """
    where = f"entity kind {cls.__qualname__}"
    if getattr(cls, "group", None) is not None:
        msg = (
            f"{where} has group={cls.group!r}: an entity kind is its own group "
            f"({GROUP_PREFIX}<name>); remove the group"
        )
        raise TypeError(msg)
    table: HandlerTable = getattr(cls, TABLE_ATTRIBUTE)
    for spec in table.specs:
        if spec.group is not None:
            msg = (
                f"{where}: handler {spec.name} names group {spec.group!r}, but an entity "
                f"kind is its own group ({GROUP_PREFIX}<name>); remove group= from @handle"
            )
            raise TypeError(msg)
    name = sharding.name if sharding.name is not None else cls.__name__
    if not _NAME.fullmatch(name):
        msg = (
            f"{where}: its name {name!r} must be 1-100 ASCII letters, digits, '_', '.' or "
            "'-' (it names the kind's group and stored states): set Sharding(name=...)"
        )
        raise ValueError(msg)
    supervision = getattr(cls, "supervision", None) or Supervision()
    kind = EntityKind(
        cls=cls,
        name=name,
        group=GROUP_PREFIX + name,
        sharding=sharding,
        table=table,
        mailbox=sharding.mailbox or getattr(cls, "mailbox", None) or Mailbox(),
        supervision=supervision,
        shard_supervision=_shard_supervision(supervision),
        takes_key=cls.__init__ is not object.__init__,
    )
    setattr(cls, KIND_ATTRIBUTE, kind)
    return kind


def _shard_supervision(entity: Supervision) -> Supervision:
    """The shard's decision on an entity's escalation: FAIL_FAST goes on, else it stops.

    An entity escalates when its restarts exceed the intensity, or on FAIL_FAST; the
    shard applies the entity's own choice of FAIL_FAST per exception class and leaves
    the entity stopped otherwise (IGNORE), so one failing key never stops its kind.
    """

    def follow(policy: Policy) -> Policy:
        return Policy.FAIL_FAST if policy is Policy.FAIL_FAST else Policy.IGNORE

    return Supervision(
        follow(entity.policy), on={exc: follow(policy) for exc, policy in entity.on.items()}
    )


def kind_of(target: object) -> EntityKind | None:
    """The `EntityKind` of an entity class (its own, not a base class's), else None."""
    if isinstance(target, type):
        found = target.__dict__.get(KIND_ATTRIBUTE)
        if isinstance(found, EntityKind):
            return found
    return None
