"""`@handle()` without a target infers it from the annotation, or says why it cannot."""

from __future__ import annotations

from typing import Any

import pytest

from actorbus import Actor, Envelope, event, handle


@event("infer.known")
class Known:
    n: int


def test_the_target_comes_from_the_annotation() -> None:
    class Inferred(Actor):
        @handle()
        async def on_known(self, event: Known, envelope: Envelope) -> None: ...

    (spec,) = Inferred.__actorbus_table__.specs
    assert spec.classes == (Known,)


def make_actor(method: Any) -> None:
    type("Broken", (Actor,), {"on_it": handle()(method)})


async def takes_an_int(self: Any, n: int) -> None: ...


async def takes_nothing(self: Any) -> None: ...


async def takes_an_unannotated(self: Any, event) -> None: ...  # type: ignore[no-untyped-def]


async def takes_two(self: Any, a: int, b: int) -> None: ...


async def takes_an_unresolvable(self: Any, event: Nowhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        (takes_an_int, "its annotation 'int' is not an event class"),
        (takes_nothing, "it takes no event parameter"),
        (takes_an_unannotated, "its event parameter has no annotation"),
        (takes_two, "its parameters take an ad-hoc event's arguments"),
        (takes_an_unresolvable, "its annotation 'Nowhere' could not be resolved"),
    ],
)
def test_without_a_target_the_error_says_why_none_was_inferred(method: Any, reason: str) -> None:
    with pytest.raises(TypeError) as raised:
        make_actor(method)
    message = str(raised.value)
    assert "has no target" in message
    assert reason in message
    assert "pass the class or a glob to @handle(...)" in message
