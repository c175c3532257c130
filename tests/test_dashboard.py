"""The dashboard's data: the snapshot and its view, the HTTP endpoints, the report to Redis.

The endpoints are served for real (Hypercorn on a loopback port, on asyncio and trio) and
read with httpx; the reports go to a real redis-server.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import httpx
import pytest
from redis_support import new_app

from actorbus import Actor, ActorSystem, Mailbox, Policy, Scope, Supervision, event, handle
from actorbus._transport import PartitionOwner
from actorbus.dashboard import listen, observe
from actorbus.dashboard._address import parse_listen
from actorbus.dashboard._observe import redis_state
from actorbus.dashboard._snapshot import take
from actorbus.dashboard._view import FOLD_OVER, TOP_PER_KIND, History, instance_view
from actorbus.redis import RedisTransport
from actorbus.redis._client import Client
from actorbus.redis._config import Keys
from actorbus.redis._endpoint import endpoint
from actorbus.redis._status import StatusReader, index_key, report_key, write_report

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from cluster_support import RedisCluster
    from redis_support import RedisServer

pytestmark = pytest.mark.anyio


@event("dash.job")
class Job:
    text: str


class Worker(Actor):
    mailbox = Mailbox(capacity=50)

    @handle()
    async def work(self, job: Job) -> None:
        if job.text.startswith("fail"):
            raise ValueError(f"cannot do {job.text}")


class Parent(Actor):
    def __init__(self, children: int = 0) -> None:
        self.children = children

    async def on_start(self) -> None:
        for _ in range(self.children):
            await self.spawn(Worker)


# -- the snapshot and its view ------------------------------------------------------------


async def test_the_view_counts_each_actor_and_aggregates_by_kind() -> None:
    async with ActorSystem("dash", actors=[Worker]) as system:
        await system.spawn(Parent, 3, name="boss")
        for text in ("a", "b", "fail-1"):
            await system.publish(Job(text))
        await system.drain()
        history = History()
        snapshot = take(system)
        view = instance_view(snapshot, history.add(snapshot), history)
    assert [row.name for row in snapshot.actors] == [
        "Worker",
        "boss",
        "Worker-2",
        "Worker-3",
        "Worker-4",
    ]
    assert snapshot.actors[2].parent == "boss"
    kinds = {kind["kind"]: kind for kind in view["kinds"]}
    assert kinds["Worker"]["count"] == 4
    assert kinds["Worker"]["processed"] == 12
    assert kinds["Worker"]["failed"] == 4
    assert kinds["Worker"]["capacity"] == 200
    assert view["tree"][1]["name"] == "boss"
    assert [child["name"] for child in view["tree"][1]["children"]] == [
        "Worker-2",
        "Worker-3",
        "Worker-4",
    ]
    assert view["letters"] == []  # LOG_AND_CONTINUE: failed, not dead-lettered


async def test_rates_come_from_successive_snapshots() -> None:
    async with ActorSystem("dash", actors=[Worker]) as system:
        history = History()
        first = take(system)
        history.add(first)
        for _ in range(10):
            await system.publish(Job("x"))
        await system.drain()
        second = attrs_evolve_taken(take(system), first.taken + 2.0)
        rates = history.add(second)
    assert rates.actors["Worker"] == 5.0
    assert list(history.kinds["Worker"]) == [0.0, 5.0]


def attrs_evolve_taken(snapshot: Any, taken: float) -> Any:
    return attrs.evolve(snapshot, taken=taken)


async def test_ten_thousand_actors_make_a_small_view() -> None:
    """Aggregated by kind, the busiest few listed, siblings of a kind folded in the tree."""
    async with ActorSystem("dash", shutdown_timeout=30.0) as system:
        await system.spawn(Parent, 10_000, name="boss")
        history = History()
        snapshot = take(system)
        view = instance_view(snapshot, history.add(snapshot), history)
    assert view["totals"]["actors"] == 10_001
    (workers,) = [kind for kind in view["kinds"] if kind["kind"] == "Worker"]
    assert workers["count"] == 10_000
    assert len(workers["actors"]) == TOP_PER_KIND
    (boss,) = view["tree"]
    assert boss["children"] == [
        {"fold": "Worker", "role": "actor", "count": 10_000, "depth": 0, "children": 0}
    ]
    assert view["tree_more"] == 0
    assert len(json.dumps(view)) < 20_000
    assert FOLD_OVER < 10_000


async def test_a_dead_letter_shows_its_error_and_a_text_preview_of_the_event() -> None:
    class Picky(Actor):
        mailbox = Mailbox(capacity=1)

        @handle()
        async def work(self, job: Job) -> None:
            raise KeyError(job.text)

    async with ActorSystem("dash") as system:
        await system.spawn(Picky, supervision=Supervision(Policy.DEAD_LETTER))
        await system.publish(Job("<script>window.__xss=1</script>"))
        await system.drain()
        (letter,) = take(system).letters
    assert letter.actor == "Picky"
    assert letter.type == "dash.job"
    assert letter.error == "KeyError: '<script>window.__xss=1</script>'"
    assert letter.preview == '{"text": "<script>window.__xss=1</script>"}'


def test_listen_addresses() -> None:
    assert parse_listen("8000") == ("127.0.0.1", 8000)
    assert parse_listen("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:8000") == ("::1", 8000)
    with pytest.raises(ValueError, match=r"is not \[HOST:\]PORT"):
        parse_listen("localhost:http")
    with pytest.raises(ValueError, match="65535"):
        parse_listen("70000")


def test_a_port_in_use_is_a_clear_error() -> None:
    first = listen("127.0.0.1:0")
    try:
        port = first.getsockname()[1]
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen(f"127.0.0.1:{port}")
    finally:
        first.close()


def test_a_public_address_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    sock = listen("0.0.0.0:0")
    sock.close()
    assert "not a loopback address" in caplog.text


# -- the endpoints ------------------------------------------------------------------------


@asynccontextmanager
async def dashboard(
    system: ActorSystem, *, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    sock = listen("127.0.0.1:0")
    port = sock.getsockname()[1]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(partial(observe, system, listen=sock, token=token, every=0.1))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            with anyio.fail_after(10):
                while True:  # the server is up once it answers
                    try:
                        await client.get("/static/dashboard.css")
                        break
                    except httpx.TransportError:
                        await anyio.sleep(0.05)
            yield client
        tasks.cancel_scope.cancel()


async def state_of(client: httpx.AsyncClient, **headers: str) -> dict[str, Any]:
    answer = await client.get("/api/state", headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_the_state_endpoint_shows_the_actors_and_their_counts() -> None:
    async with ActorSystem("shop", actors=[Worker]) as system, dashboard(system) as client:
        await system.publish(Job("a"))
        await system.drain()

        async def processed() -> int:
            state = await state_of(client)
            if state.get("starting"):
                return -1
            return int(state["instances"][0]["totals"]["processed"])

        with anyio.fail_after(10):
            while await processed() < 1:  # noqa: ASYNC110 - polls another party
                await anyio.sleep(0.05)
        state = await state_of(client)
    assert state["app"] == "shop"
    assert state["source"] == "process"
    (view,) = state["instances"]
    assert view["kinds"][0]["actors"][0]["name"] == "Worker"
    assert state["streams"] == []
    assert state["partitions"] is None


async def test_the_page_and_its_script_are_served_with_a_strict_policy() -> None:
    async with ActorSystem("shop") as system, dashboard(system) as client:
        page = await client.get("/")
        script = await client.get("/static/dashboard.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200
    assert "textContent" in script.text
    assert "innerHTML" not in script.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_only_get_is_answered(method: str) -> None:
    async with ActorSystem("shop") as system, dashboard(system) as client:
        for path in ("/", "/api/state", "/api/events", "/nowhere"):
            answer = await client.request(method, path)
            assert answer.status_code == 405, path
            assert answer.headers["allow"] == "GET"


async def test_a_request_for_another_host_is_refused_on_loopback() -> None:
    """A page elsewhere cannot read a loopback dashboard through DNS rebinding."""
    async with ActorSystem("shop") as system, dashboard(system) as client:
        answer = await client.get("/api/state", headers={"Host": "evil.example:8000"})
        good = await client.get("/api/state", headers={"Host": "localhost:8000"})
    assert answer.status_code == 400
    assert good.status_code == 200


async def test_a_token_is_needed_on_every_request() -> None:
    token = "s3cret-token"
    async with ActorSystem("shop") as system, dashboard(system, token=token) as client:
        for path in ("/", "/api/state", "/api/events", "/static/dashboard.js"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert token not in refused.text
        wrong = await client.get("/api/state", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await client.get("/", params={"token": "nope"})).status_code == 401
        by_header = await state_of(client, Authorization=f"Bearer {token}")
        entry = await client.get("/", params={"token": token})
        assert entry.status_code == 303
        assert entry.headers["location"] == "/"
        cookie = entry.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert token not in cookie
        page = await client.get("/")  # the client kept the cookie
        assert page.status_code == 200
        state = await state_of(client)
    assert token not in json.dumps(by_header)
    assert token not in json.dumps(state)
    assert token not in page.text


async def test_the_event_stream_sends_each_new_state() -> None:
    # A raw connection: httpx leaves async generators unclosed on trio when a stream is
    # left early (a ResourceWarning, an error here).
    async with ActorSystem("shop", actors=[Worker]) as system, dashboard(system) as client:
        seen: list[dict[str, Any]] = []
        async with await anyio.connect_tcp("127.0.0.1", client.base_url.port or 0) as stream:
            await stream.send(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            with anyio.fail_after(10):
                while not seen or seen[-1]["instances"][0]["totals"]["processed"] < 1:
                    received += await stream.receive()
                    *lines, received = received.split(b"\n")
                    for line in lines:
                        if line.startswith(b"data: "):
                            seen.append(json.loads(line.removeprefix(b"data: ")))
                            if len(seen) == 1:
                                await system.publish(Job("a"))
    assert seen[0]["app"] == "shop"
    assert len(seen) >= 2


# -- the report to Redis ------------------------------------------------------------------


async def test_an_instance_reports_to_redis_with_a_ttl_and_removes_it_when_it_stops(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    app = f"dash-{request.node.name}"
    transport = RedisTransport(redis_server.url, instance="w-1")
    reader = StatusReader(redis_server.url, app)
    try:
        async with (
            ActorSystem(app, transport=transport, actors=[Worker]) as system,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(partial(observe, system, every=0.1))
            with anyio.fail_after(10):
                while not await reader.reports():  # noqa: ASYNC110 - polls Redis
                    await anyio.sleep(0.05)
            (raw,) = await reader.reports()
            ttl = redis_server.cli("PTTL", report_key(reader.keys, "w-1"))
            streams = await reader.streams()
            tasks.cancel_scope.cancel()
        after = await reader.reports()
    finally:
        await reader.aclose()
    report = json.loads(raw)
    assert report["instance"] == "w-1"
    assert report["app"] == app
    assert report["kinds"][0]["actors"][0]["name"] == "Worker"
    assert report["kinds"][0]["actors"][0]["spark"] == []  # reports stay small
    assert 0 < int(ttl) <= 2000
    assert len(raw) < 4000
    events = streams[0]
    assert events.name.endswith(":events")
    assert [group.name for group in events.groups] == ["b:w-1"]
    assert streams[1].name.endswith(":dead")
    assert after == []  # a clean stop removes the report at once
    assert redis_server.cli("ZCARD", index_key(reader.keys)) in {0, "0"}


async def test_a_report_not_renewed_disappears(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    """No instance, no stale entry: a crashed instance's report expires with its ttl."""
    app = f"dash-{request.node.name}"
    reader = StatusReader(redis_server.url, app)
    client = Client(endpoint(redis_server.url, None, "test"), timeout=5.0)
    try:
        await write_report(client, reader.keys, "gone", b'{"instance": "gone"}', 0.2)
        assert await reader.reports() == [b'{"instance": "gone"}']
        await anyio.sleep(0.4)
        assert await reader.reports() == []
    finally:
        await client.aclose()
        await reader.aclose()


async def test_the_redis_dashboard_shows_every_instance_and_no_password(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    app = f"dash-{request.node.name}"
    reader = StatusReader(redis_server.url, app)
    try:
        async with (
            ActorSystem(app, transport=RedisTransport(redis_server.url, instance="a")) as one,
            ActorSystem(app, transport=RedisTransport(redis_server.url, instance="b")) as two,
            anyio.create_task_group() as tasks,
        ):
            await one.spawn(Worker)
            await two.spawn(Worker)
            tasks.start_soon(partial(observe, one, every=0.1))
            tasks.start_soon(partial(observe, two, every=0.1))
            with anyio.fail_after(10):
                while len((await redis_state(reader, app))["instances"]) < 2:  # noqa: ASYNC110 - polls Redis
                    await anyio.sleep(0.05)
            state = await redis_state(reader, app)
            tasks.cancel_scope.cancel()
    finally:
        await reader.aclose()
    assert [view["instance"] for view in state["instances"]] == ["a", "b"]
    assert state["source"] == reader.where
    assert "***" in state["source"]
    password = redis_server.url.split(":")[2].split("@")[0]
    assert password
    assert password not in json.dumps(state)
    assert {stream["name"].rsplit(":", 1)[1] for stream in state["streams"]} == {"events", "dead"}


# -- the partition map, from the leases ---------------------------------------------------


@event("dash.keyed", scope=Scope.APP, key="key")
class Keyed:
    key: str


class Keeper(Actor):
    group = "keepers"

    @handle()
    async def keep(self, event: Keyed) -> None:
        del event


async def test_the_partition_map_is_read_from_the_leases(
    redis_any: RedisServer | RedisCluster,
) -> None:
    """Every group's owner and fencing token per partition, in single-key commands."""
    app = new_app("dash")
    one = RedisTransport(redis_any.url, instance="a", partitions=4, lease=3.0)
    two = RedisTransport(redis_any.url, instance="b", partitions=4, lease=3.0)
    reader = StatusReader(redis_any.url, app)
    try:
        assert await reader.partitions() is None  # the application has not started yet
        async with (
            ActorSystem(app, transport=one, actors=[Keeper]) as system,
            ActorSystem(app, transport=two, actors=[Keeper]),
        ):
            with anyio.fail_after(30):
                while sorted(len(t.owned("keepers")) for t in (one, two)) != [2, 2]:  # noqa: ASYNC110 - polls the ownership
                    await anyio.sleep(0.05)
            owned = {"a": one.owned("keepers"), "b": two.owned("keepers")}
            found = await one.partition_owners()
            read = await reader.partitions()
            streams = await reader.streams()
            state = await redis_state(reader, app)
            await system.publish(Keyed("k"))
    finally:
        await reader.aclose()
    expected = {
        partition: PartitionOwner(name, token)
        for name, partitions in owned.items()
        for partition, token in partitions.items()
    }
    assert found == {"keepers": expected}
    assert read == found
    keys = Keys("actorbus", app, 4)
    assert [stream.name for stream in streams] == [*keys.streams, keys.dead]
    for stream in streams[:4]:
        assert {group.name for group in stream.groups} == {"b:a", "b:b", "g:keepers"}
    (group,) = state["partitions"]
    assert group["group"] == "keepers"
    assert group["owners"] == [{"owner": "a", "count": 2}, {"owner": "b", "count": 2}]
    assert [p["token"] for p in group["partitions"]] == [expected[p].token for p in range(4)]


async def test_one_partition_has_no_map_on_redis(redis_server: RedisServer) -> None:
    app = new_app("dash")
    transport = RedisTransport(redis_server.url, instance="a")
    reader = StatusReader(redis_server.url, app)
    try:
        async with ActorSystem(app, transport=transport, actors=[Keeper]):
            assert await transport.partition_owners() is None
            assert await reader.partitions() is None
    finally:
        await reader.aclose()
