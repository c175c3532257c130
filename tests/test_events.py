"""`@event` and `Scope` (SPEC §2 "Events and envelopes").

The conftest resets the event registry after every test, so the classes whose
registration matters are declared inside the tests.
"""

import dataclasses

import anyio
import attrs
import pytest

from actorbus import (
    Actor,
    ActorSystem,
    DeadLetter,
    Envelope,
    Scope,
    SystemStarted,
    SystemStopping,
    Terminated,
    event,
    handle,
)
from actorbus.testing import registered_events, reset_event_registry

# -- Scope --------------------------------------------------------------------------------


def test_scope_has_process_and_app() -> None:
    assert {member.name for member in Scope} == {"PROCESS", "APP"}
    assert Scope.PROCESS is not Scope.APP


# -- the class it makes -------------------------------------------------------------------


def test_event_returns_a_class_built_from_its_annotations() -> None:
    @event("events.test.point")
    class Point:
        x: int
        y: int = 0

    point = Point(1, 2)
    assert (point.x, point.y) == (1, 2)
    assert Point(x=3).y == 0


def test_plain_class_becomes_a_frozen_attrs_class() -> None:
    @event("events.test.frozen")
    class Frozen:
        value: int

    assert attrs.has(Frozen)
    instance = Frozen(1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        instance.value = 2  # type: ignore[misc]
    assert instance.value == 1


def test_attrs_class_gets_value_equality_and_a_repr() -> None:
    @event("events.test.value")
    class Value:
        amount: float
        label: str

    assert Value(1.5, "a") == Value(1.5, "a")
    assert Value(1.5, "a") != Value(1.5, "b")
    assert hash(Value(1.5, "a")) == hash(Value(1.5, "a"))
    assert "1.5" in repr(Value(1.5, "a"))


def test_dataclass_is_kept_as_it_is() -> None:
    @event("events.test.dataclass")
    @dataclasses.dataclass
    class Mutable:
        value: int

    assert dataclasses.is_dataclass(Mutable)
    assert not attrs.has(Mutable)
    instance = Mutable(1)
    instance.value = 2  # a non-frozen dataclass stays mutable: the user chose it
    assert instance.value == 2


def test_frozen_dataclass_is_kept_as_it_is() -> None:
    @event("events.test.frozen_dataclass")
    @dataclasses.dataclass(frozen=True)
    class Frozen:
        value: int

    assert dataclasses.is_dataclass(Frozen)
    assert not attrs.has(Frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Frozen(1).value = 2  # type: ignore[misc]


def test_attrs_class_is_kept_as_it_is() -> None:
    @event("events.test.attrs_define")
    @attrs.define
    class Mutable:
        value: int

    instance = Mutable(1)
    instance.value = 2  # @attrs.define (not frozen) is not turned into a frozen class
    assert instance.value == 2


# -- the registry -------------------------------------------------------------------------


def test_type_is_registered_for_the_class() -> None:
    @event("events.test.registered")
    class Registered:
        value: int

    assert registered_events()["events.test.registered"] is Registered


def test_same_type_for_two_classes_is_a_value_error() -> None:
    @event("events.test.duplicate")
    class First:
        value: int

    class Second:
        value: int

    with pytest.raises(ValueError, match=r"events\.test\.duplicate"):
        event("events.test.duplicate")(Second)
    # The first registration is untouched.
    assert registered_events()["events.test.duplicate"] is First


def test_decorating_the_same_class_twice_is_not_a_duplicate() -> None:
    @event("events.test.again")
    class Again:
        value: int

    assert event("events.test.again")(Again) is Again
    assert registered_events()["events.test.again"] is Again


def test_two_types_for_two_classes_are_fine() -> None:
    @event("events.test.one")
    class One:
        value: int

    @event("events.test.two")
    class Two:
        value: int

    found = registered_events()
    assert found["events.test.one"] is One
    assert found["events.test.two"] is Two


@pytest.mark.parametrize("bad", ["", "order created", "order.*", "order.?", "order.[ab]"])
def test_invalid_type_string_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="type"):
        event(bad)


def test_scope_must_be_a_scope() -> None:
    with pytest.raises(TypeError, match="Scope"):
        event("events.test.bad_scope", scope="app")  # type: ignore[arg-type]


def test_reset_registry_frees_the_type() -> None:
    @event("events.test.reset")
    class Before:
        value: int

    reset_event_registry()
    assert "events.test.reset" not in registered_events()

    @event("events.test.reset")
    class After:
        value: int

    assert registered_events()["events.test.reset"] is After


def test_reset_registry_keeps_the_lifecycle_events() -> None:
    reset_event_registry()
    classes = set(registered_events().values())
    assert {SystemStarted, SystemStopping, Terminated, DeadLetter} <= classes


# -- type and scope at publish time ----------------------------------------------------------


class Recorder(Actor):
    def __init__(self, envelopes: list[Envelope]) -> None:
        self.envelopes = envelopes

    @handle("events.*")
    async def record(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("registered", "given", "scope"),
    [
        (None, None, Scope.PROCESS),
        (Scope.APP, None, Scope.APP),  # APP without a transport: delivered locally
        (Scope.APP, Scope.PROCESS, Scope.PROCESS),
    ],
    ids=["the default scope", "the class's scope", "publish's scope over the class's"],
)
async def test_published_envelope_carries_the_registered_type_and_its_scope(
    registered: Scope | None, given: Scope | None, scope: Scope
) -> None:
    @event("events.scoped", **({} if registered is None else {"scope": registered}))
    class Scoped:
        value: int

    received: list[Envelope] = []
    async with ActorSystem("events") as system:
        await system.spawn(Recorder, received)
        envelope = await system.publish(Scoped(1), scope=given)
        with anyio.fail_after(5):
            await system.drain()

    assert (envelope.type, envelope.scope) == ("events.scoped", scope)
    assert [(e.type, e.data, e.scope) for e in received] == [("events.scoped", Scoped(1), scope)]


@pytest.mark.anyio
async def test_scope_is_kept_per_class_after_the_registry_is_reset() -> None:
    """A class keeps its own type and scope: the registry only maps wire types back."""

    @event("events.kept.app", scope=Scope.APP)
    class Wide:
        value: int

    reset_event_registry()
    async with ActorSystem("events") as system:
        envelope = await system.publish(Wide(1))
    assert (envelope.type, envelope.scope) == ("events.kept.app", Scope.APP)


@pytest.mark.anyio
async def test_subclass_of_an_event_is_published_under_its_own_type() -> None:
    """A decorated subclass of an event has its own type, not its base's."""

    @event("events.base")
    class Base:
        value: int

    @event("events.derived")
    class Derived(Base):
        pass

    async with ActorSystem("events") as system:
        base = await system.publish(Base(1))
        derived = await system.publish(Derived(2))
    assert base.type == "events.base"
    assert derived.type == "events.derived"
