"""Partitioned streams on a real redis-server: where events go, who owns what, and order.

Several instances run in this process (each `ActorSystem` is one), on both backends;
`tests/test_redis_ownership.py` has the tests where a member process is killed or paused.
Short leases (1 s) keep the rounds of the ownership protocol quick.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from redis_support import RedisServer, dead_key, new_app, raw_client

from actorbus import Actor, ActorSystem, Scope, event, handle
from actorbus._keys import PARTITION_KEY, partition_of
from actorbus.redis import RedisTransport
from actorbus.redis._config import Keys
from actorbus.redis._subscriptions import Subscriptions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from actorbus._envelope import Envelope
    from actorbus._message import Delivery
    from actorbus._transport import TransportHost

pytestmark = pytest.mark.anyio

PARTITIONS = 4


@event("parts.step", scope=Scope.APP, key="order")
class Step:
    order: str
    n: int


@event("parts.tick", scope=Scope.APP)
class Tick:
    n: int


@event("parts.ask", scope=Scope.APP)
class Ask:
    n: int


def transport(url: str, **settings: Any) -> RedisTransport:
    return RedisTransport(url, partitions=PARTITIONS, lease=1.0, block=0.2, **settings)


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls what handlers and Redis change
            await anyio.sleep(0.02)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` (which asks Redis) until it holds."""
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - polls Redis
            await anyio.sleep(0.05)


Handled = list[tuple[str, str, int]]
"""(member, key, n) in the order handled, across the members of one test."""


def member(name: str, handled: Handled) -> Callable[..., Any]:
    @handle(Step, group="work")
    async def work(step: Step) -> None:
        handled.append((name, step.order, step.n))
        await anyio.sleep(0.001)

    work.__name__ = f"work_{name}"
    return work


@pytest.fixture(params=["shared reads", "own reads"])
def reads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with a partitioned group's partitions read together (one server) and
    each by its own consumer (what a Redis Cluster needs)."""
    monkeypatch.setattr(Subscriptions, "shared_reads", request.param == "shared reads")
    return str(request.param)


def check_order(handled: Handled, expected: int, *, exactly_once: bool) -> None:
    """Every event handled; each key's in order (first handlings), duplicates if allowed."""
    by_key: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    duplicates = 0
    for _, key, n in handled:
        if (key, n) in seen:
            duplicates += 1
            continue
        seen.add((key, n))
        by_key[key].append(n)
    assert len(seen) == expected
    for key, ns in by_key.items():
        assert ns == sorted(ns), f"key {key} out of order: {ns}"
    if exactly_once:
        twice = [
            entry
            for entry in handled
            if handled.count(entry) > 1 or sum(1 for _, k, n in handled if (k, n) == entry[1:]) > 1
        ]
        assert duplicates == 0, f"handled twice (member, key, n): {twice[:20]}"


@contextlib.asynccontextmanager
async def sole_owner(
    app: str, transport: RedisTransport, handled: Handled
) -> AsyncIterator[ActorSystem]:
    """A system whose member "a" (see `member`) owns every partition by now."""
    async with ActorSystem(app, transport=transport) as system:
        await system.spawn(member("a", handled))
        await eventually(lambda: len(transport.owned("work")) == PARTITIONS)
        yield system


async def publish_steps(
    system: ActorSystem, numbers: range, keys: int = 12, pause: float = 0.0
) -> None:
    for n in numbers:
        await system.publish(Step(f"o-{n % keys}", n))
        if pause:
            await anyio.sleep(pause)


async def publish_slowly(system: ActorSystem, numbers: range) -> None:
    """Over a few rounds of the ownership protocol (to see partitions change hands)."""
    await publish_steps(system, numbers, pause=0.004)


# -- where events go -----------------------------------------------------------------------


async def test_a_keyed_event_goes_to_its_partition_and_the_others_take_turns(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    async with ActorSystem(app, transport=transport(redis_server.url)) as system:
        await publish_steps(system, range(40), keys=10)
        for n in range(8):
            await system.publish(Tick(n))
    keys = Keys("actorbus", app, PARTITIONS)
    unkeyed: list[int] = []
    async with raw_client(redis_server.url) as raw:
        for partition, stream in enumerate(keys.streams):
            entries = await raw.entries(stream)
            unkeyed.append(len([1 for _, fields in entries if fields[b"t"] == b"parts.tick"]))
            for _, fields in entries:
                event_ = json.loads(fields[b"e"])
                if fields[b"t"] == b"parts.step":
                    assert partition_of(event_[PARTITION_KEY], PARTITIONS) == partition
        assert not await raw("EXISTS", f"actorbus:app:{app}:events")
        assert await raw("HGET", keys.meta, "partitions") == b"4"
    assert unkeyed == [2, 2, 2, 2]  # round-robin


async def test_a_broadcast_subscriber_reads_every_partition_in_order(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    seen: list[tuple[str, int]] = []

    @handle(Step)
    async def audit(step: Step) -> None:
        seen.append((step.order, step.n))

    async with (
        ActorSystem(app, transport=transport(redis_server.url)) as listening,
        ActorSystem(app, transport=transport(redis_server.url)) as publishing,
    ):
        await listening.spawn(audit)
        await publish_steps(publishing, range(200))
        await eventually(lambda: len(seen) == 200)
    check_order([("audit", key, n) for key, n in seen], 200, exactly_once=True)


# -- ownership -----------------------------------------------------------------------------


async def test_members_share_the_partitions_and_each_key_stays_with_its_owner(
    redis_server: RedisServer, reads: str
) -> None:
    app = new_app()
    handled: Handled = []
    a, b = transport(redis_server.url), transport(redis_server.url)
    async with ActorSystem(app, transport=a) as first, ActorSystem(app, transport=b) as second:
        await first.spawn(member("a", handled))
        await second.spawn(member("b", handled))
        await eventually(lambda: len(a.owned("work")) == len(b.owned("work")) == 2)
        assert set(a.owned("work")) | set(b.owned("work")) == set(range(PARTITIONS))
        owners = dict.fromkeys(a.owned("work"), "a") | dict.fromkeys(b.owned("work"), "b")
        await publish_steps(first, range(200))
        await eventually(lambda: len(handled) == 200)
        assert all(owners[partition_of(key, PARTITIONS)] == name for name, key, _ in handled)
        assert a.owned("group-not-joined") == {}
    check_order(handled, 200, exactly_once=True)
    assert a.stats().lost == b.stats().lost == 0


async def test_a_graceful_leave_hands_everything_over_without_redelivery(
    redis_server: RedisServer, reads: str
) -> None:
    app = new_app()
    handled: Handled = []
    a, b = transport(redis_server.url), transport(redis_server.url)
    async with ActorSystem(app, transport=a) as staying:
        await staying.spawn(member("a", handled))
        async with ActorSystem(app, transport=b) as leaving:
            await leaving.spawn(member("b", handled))
            await eventually(lambda: len(b.owned("work")) == 2)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(publish_slowly, staying, range(600))
                await eventually(lambda: len(handled) >= 100)
            # (the publisher goes on while `leaving` stops: its partitions change hands)
        assert {name for name, _, _ in handled} == {"a", "b"}
        await eventually(lambda: len(a.owned("work")) == PARTITIONS)
        await eventually(lambda: len({(k, n) for _, k, n in handled}) == 600)
    check_order(handled, 600, exactly_once=True)
    assert b.stats().fenced == 0


async def test_a_joining_member_takes_its_share_without_redelivery(
    redis_server: RedisServer, reads: str
) -> None:
    app = new_app()
    handled: Handled = []
    a, b = transport(redis_server.url), transport(redis_server.url)
    async with sole_owner(app, a, handled) as first, anyio.create_task_group() as tasks:
        tasks.start_soon(publish_slowly, first, range(600))
        await eventually(lambda: len(handled) >= 100)
        async with ActorSystem(app, transport=b) as second:
            await second.spawn(member("b", handled))
            await eventually(lambda: len(b.owned("work")) == 2)
            await eventually(lambda: len(handled) >= 600)
    assert {name for name, _, _ in handled} == {"a", "b"}
    check_order(handled, 600, exactly_once=True)


async def test_a_member_whose_actor_stopped_hands_its_partitions_over(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    handled: Handled = []
    a, b = transport(redis_server.url), transport(redis_server.url)
    async with ActorSystem(app, transport=a) as first, ActorSystem(app, transport=b) as second:
        await first.spawn(member("a", handled))
        ref = await second.spawn(member("b", handled))
        await eventually(lambda: len(b.owned("work")) == 2)
        await ref.stop()
        await eventually(lambda: len(a.owned("work")) == PARTITIONS and not b.owned("work"))
        await publish_steps(second, range(100))
        await eventually(lambda: len(handled) == 100)
    assert {name for name, _, _ in handled} == {"a"}


async def test_requests_reach_the_owner_and_come_back(redis_server: RedisServer) -> None:
    app = new_app()

    class Answerer(Actor):
        group = "work"

        @handle()
        async def answer(self, ask: Ask) -> int:
            return ask.n * 2

    async with (
        ActorSystem(app, transport=transport(redis_server.url), actors=[Answerer]),
        ActorSystem(app, transport=transport(redis_server.url)) as asking,
    ):
        answers = [await asking.request(Ask(n), timeout=10) for n in range(8)]
    assert answers == [n * 2 for n in range(8)]


# -- what the transport does for a partition's state and fence -------------------------------


class Recording:
    """A `TransportHost` that notes each delivery's state commit and `release` calls."""

    def __init__(self, host: TransportHost, released: list[tuple[str, frozenset[int]]]) -> None:
        self._host = host
        self.released = released

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    async def deliver(
        self, envelope: Envelope, group: str | None, fence: Callable[[], bool] | None = None
    ) -> Delivery:
        delivery = await self._host.deliver(envelope, group, fence)
        if group is not None and envelope.type == "parts.step":
            step = envelope.data  # (as received: a dict)
            # What an entity does once it handled the message: its new state, to be saved
            # with the acknowledgement.
            delivery.commit = ("Counter", step["order"], b"%d" % step["n"])
        return delivery

    async def release(self, group: str, partitions: frozenset[int]) -> None:
        self.released.append((group, partitions))
        await self._host.release(group, partitions)


class RecordingTransport(RedisTransport):
    def __init__(self, url: str) -> None:
        super().__init__(url, partitions=PARTITIONS, lease=1.0, block=0.2)
        self.released: list[tuple[str, frozenset[int]]] = []

    async def open(self, host: TransportHost, task_group: anyio.abc.TaskGroup) -> None:
        await super().open(Recording(host, self.released), task_group)  # type: ignore[arg-type]


async def test_a_committed_state_is_saved_with_the_acknowledgement(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    handled: Handled = []
    committing = RecordingTransport(redis_server.url)
    keys = Keys("actorbus", app, PARTITIONS)
    async with sole_owner(app, committing, handled) as system:
        # Steadily, so that reads keep coming: their acknowledgements go with the reads,
        # but never those of an entry with a state to save.
        await publish_slowly(system, range(400))
        await eventually(lambda: len(handled) == 400)
        async with raw_client(redis_server.url) as raw:

            async def acknowledged() -> bool:
                for stream in keys.streams:
                    if await raw.pending(stream, "g:work"):
                        return False
                return True

            await until(acknowledged)
            for key in sorted({key for _, key, _ in handled}):
                last = max(n for _, k, n in handled if k == key)
                state = await committing.load_state("Counter", key)
                assert state == b"%d" % last
                partition = partition_of(key, PARTITIONS)
                assert await raw("GET", keys.state(partition, "Counter", key)) == state
        assert await committing.load_state("Counter", "never") is None


async def test_a_lost_lease_stops_the_partition_and_releases_it(
    redis_server: RedisServer, reads: str
) -> None:
    app = new_app()
    handled: Handled = []
    owner = RecordingTransport(redis_server.url)
    keys = Keys("actorbus", app, PARTITIONS)
    async with sole_owner(app, owner, handled) as system:
        token = owner.owned("work")[0]
        async with raw_client(redis_server.url) as raw:
            # Someone else holds partition 0 now (as after a pause past the lease).
            await raw("SET", keys.lease(0, "g:work"), "999:thief:x", "PX", 1500)
            await eventually(lambda: 0 not in owner.owned("work"))
            await eventually(lambda: ("work", frozenset({0})) in owner.released)
            assert owner.stats().lost == 1
            # Once the thief's lease expired, partition 0 is ours again, in a new tenure.
            await eventually(lambda: 0 in owner.owned("work"))
            assert owner.owned("work")[0] > token
        await publish_steps(system, range(40))
        await eventually(lambda: len(handled) == 40)


async def test_an_entry_in_the_wrong_partition_is_dead_lettered(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    handled: Handled = []
    keys = Keys("actorbus", app, PARTITIONS)
    wrong = next(k for k in (f"k{n}" for n in range(100)) if partition_of(k, PARTITIONS) != 0)
    cloudevent = {
        "specversion": "1.0",
        "id": "misplaced-1",
        "source": "other-producer",
        "type": "parts.step",
        PARTITION_KEY: wrong,
        "data": {"order": wrong, "n": 1},
    }
    async with ActorSystem(app, transport=transport(redis_server.url)) as system:
        await system.spawn(member("a", handled))
        async with raw_client(redis_server.url) as raw:
            await raw("XADD", keys.stream(0), "*", "e", json.dumps(cloudevent), "t", "parts.step")
            letters: list[Any] = []

            async def dead() -> bool:
                letters[:] = await raw.entries(dead_key(app))
                return bool(letters)

            await until(dead)
    assert handled == []
    (_, fields), *_ = letters
    assert b"whose partition is" in fields[b"error"]
    assert fields[b"stream"] == keys.stream(0).encode()
