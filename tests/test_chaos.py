"""Fault injection: worker processes SIGKILLed, Redis stopped and killed, poison events.

`test_a_small_chaos_run_loses_nothing` runs ``benchmarks/chaos.py`` (a small size) in a
subprocess and checks its JSON results; the full run and the soak are documented in
``benchmarks/README.md`` (Reliability). The other tests are regressions for what the chaos
run found.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from actorbus import ActorSystem, Scope, event, handle
from actorbus.redis import RedisTransport

if TYPE_CHECKING:
    from redis_support import RedisServer

pytestmark = pytest.mark.chaos

CHAOS = Path(__file__).resolve().parent.parent / "benchmarks" / "chaos.py"
# Generous on purpose: the run itself waits for conditions, never for fixed times, and a
# loaded 2-core machine can take several seconds to start each worker process.
RUN_TIMEOUT = 600


@event("chaos.test.tick", scope=Scope.APP)
class Tick:
    seq: int


def run_chaos(tmp_path: Path, *options: str) -> tuple[list[dict[str, Any]], str]:
    """Run ``benchmarks/chaos.py`` with 1,000 events, 2 workers, kills and Redis faults.

    Returns the results of each configuration, and the run's output for failure reports.
    """
    out = tmp_path / "chaos.json"
    command = [
        sys.executable,
        str(CHAOS),
        "--events=1000",
        "--workers=2",
        "--rate=200",
        "--kill-interval=2",
        "--outage=1",
        "--persistence=both",
        *options,
        f"--json={out}",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"chaos.py did not finish within {RUN_TIMEOUT}s:\n{exc.stdout}\n{exc.stderr}")
    report = f"{done.stdout}\n{done.stderr[-5000:]}"
    assert done.returncode == 0, report
    results: list[dict[str, Any]] = json.loads(out.read_text())["results"]
    for result in results:
        assert result["ok"], report
        assert result["published"] == 1000, report
        assert result["lost"] == 0, report
        assert result["kills"], report  # at least one worker was SIGKILLed and replaced
        assert result["crashes"] == [], report
    return results, report


def test_a_small_chaos_run_loses_nothing(tmp_path: Path) -> None:
    """1,000 events, 2 workers, kills, a Redis SHUTDOWN (and SIGKILL with AOF), poison.

    AOF runs its workers on trio, no persistence on asyncio.
    """
    results, report = run_chaos(tmp_path, "--backend=trio,asyncio")
    assert [r["config"]["persistence"] for r in results] == ["aof", "none"]
    for result in results:
        assert result["group"]["lost"] == 0, report
        poison = result["poison"]
        assert poison["published"] == 10, report
        assert poison["dead_lettered"] + poison["lost_by_redis"] == poison["published"], report
        assert "PoisonError" in poison["example_error"], report
        assert result["ledger_duplicates"] == 0, report  # the idempotent effect: once per id
    assert [f["kind"] for f in results[0]["redis_faults"]] == ["shutdown", "sigkill"], report
    assert [f["kind"] for f in results[1]["redis_faults"]] == ["shutdown"], report


def test_a_small_keyed_chaos_run_keeps_each_key_in_order(tmp_path: Path) -> None:
    """The same with 50 keys and 4 partitions: nothing lost, no per-key order violation.

    Among the events the group handled exactly once, none was handled after a later event
    of its key, across worker kills (leases taken over after 2 s) and Redis faults.
    """
    results, report = run_chaos(
        tmp_path, "--backend=asyncio,trio", "--partitions=4", "--keys=50", "--lease=2"
    )
    for result in results:
        assert result["order"]["violations"] == 0, report
        assert result["order"]["checked"] > 0, report


@pytest.mark.anyio
async def test_a_live_instance_keeps_its_group_when_its_heartbeat_is_lost(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the chaos run: a Redis restarted without persistence loses every heartbeat.

    The janitor of another instance then saw the live instance's broadcast group without
    a heartbeat and removed it at once (and trimmed past what it had not read): the live
    instance recreated it from the oldest entry kept, handling those again — or losing
    the ones already trimmed. A janitor now waits until it has seen the heartbeat missing
    for a whole heartbeat lifetime, and live instances beat well within that.
    """
    caplog.set_level(logging.INFO, logger="actorbus.redis")
    app = f"t-{secrets.token_hex(4)}"
    seen: list[int] = []

    @handle(Tick)
    async def on_tick(tick: Tick) -> None:
        seen.append(tick.seq)

    async def until(count: int) -> None:
        with anyio.fail_after(20):
            while len(seen) < count:  # noqa: ASYNC110 - polls what the handler records
                await anyio.sleep(0.01)

    # The live instance beats every second; the other's janitor looks 20 times a second
    # and (heartbeat lifetime 3 s) waits longer than one beat before removing anything.
    live = RedisTransport(redis_server.url, trim_interval=1.0, stale_after=3.0)
    janitor = RedisTransport(redis_server.url, trim_interval=0.05, stale_after=3.0)
    async with (
        ActorSystem(app, transport=live) as system,
        ActorSystem(app, transport=janitor) as other,
    ):
        await system.spawn(on_tick)
        for seq in range(10):
            await other.publish(Tick(seq))
        await until(10)
        # What a restart without persistence does to the heartbeat (the group survives
        # here, so that a removal shows as a replay).
        redis_server.cli("DEL", f"actorbus:app:{app}:alive:{live.instance}")
        await anyio.sleep(1.5)  # the janitor trims ~30 times; the live instance beats again
        for seq in range(10, 20):
            await other.publish(Tick(seq))
        await until(20)
        await anyio.sleep(0.2)  # a replay, if any, would arrive now
    assert seen == list(range(20))
    removed = [r.getMessage() for r in caplog.records if "removed consumer group" in r.getMessage()]
    assert not any(live.instance in message for message in removed)


@pytest.mark.anyio
async def test_replies_refused_while_redis_loads_its_data_are_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by the chaos run: after a restart, Redis answers LOADING while it reads its AOF.

    The acker logged such replies as errors and dropped them: acknowledgements were lost
    (the entries were handled again), and a dead letter answered LOADING while its XACK
    went through was lost for good. Now the pipeline is sent again. (LOADING cannot be
    produced on demand, so a stand-in connection answers it.)
    """
    from actorbus.redis._acker import Acker, _Batch  # noqa: PLC0415
    from actorbus.redis._config import Keys  # noqa: PLC0415
    from actorbus.redis._context import Context  # noqa: PLC0415
    from actorbus.redis._errors import reply_error  # noqa: PLC0415

    transport = RedisTransport("redis://127.0.0.1:1/0")
    context = Context(transport.url, Keys("actorbus", "app"), transport.settings, "w1")
    acker = Acker(context, "g:work", {b"1-0": 0.0})
    sent: list[Any] = []

    class Loading:
        """Answers the first pipeline as a Redis still loading its AOF could."""

        async def pipeline(self, commands: list[Any], *, timeout: float) -> list[Any]:
            sent.append(commands)
            if len(sent) == 1:
                return [reply_error("LOADING Redis is loading the dataset in memory"), 1]
            return [b"1700000000000-0", 1]

    batch = _Batch()
    batch.dead.append({b"e": b"{}", b"error": b"PoisonError: poison", b"entry": b"1-0"})
    batch.acks.append(b"1-0")
    caplog.set_level(logging.WARNING, logger="actorbus.redis")
    await acker._flush(Loading(), batch)  # type: ignore[arg-type]
    assert len(sent) == 2
    assert sent[1] == sent[0]
    stats = context.counters
    assert (stats.dead_lettered, stats.acked) == (1, 1)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.anyio
async def test_unwanted_entries_acknowledged_while_redis_loads_are_acknowledged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The reader's own XACK (of entries nobody here wants) meets LOADING the same way.

    It was logged as an ACL error and the ids were dropped (they came back only through
    claiming); now they go out again with the next read, and nothing is logged as refused.
    """
    from actorbus.redis._config import Keys  # noqa: PLC0415
    from actorbus.redis._consumer import GroupConsumer  # noqa: PLC0415
    from actorbus.redis._context import Context  # noqa: PLC0415
    from actorbus.redis._errors import Unavailable, reply_error  # noqa: PLC0415
    from actorbus.redis._protocol import pack  # noqa: PLC0415

    transport = RedisTransport("redis://127.0.0.1:1/0")
    context = Context(transport.url, Keys("actorbus", "app"), transport.settings, "w1")
    async with ActorSystem("loading") as system:
        consumer = GroupConsumer(context, system, "b:w1", None, resume=False)
        consumer._unwanted_ids = [b"1-0", b"2-0"]
        sent: list[Any] = []

        class Loading:
            """Answers the first read as a Redis still loading its AOF could."""

            async def send(self, packed: bytes, count: int, *, timeout: float) -> list[Any]:
                sent.append(packed)
                loading = reply_error("LOADING Redis is loading the dataset in memory")
                if len(sent) == 1:
                    return [loading, loading]
                return [2, []]

        read = pack([(b"XREADGROUP", b"GROUP", b"b:w1", b"w1", b"STREAMS", b"k", b">")])
        caplog.set_level(logging.WARNING, logger="actorbus.redis")
        with pytest.raises(Unavailable):
            await consumer._read(Loading(), read, 1.0)  # type: ignore[arg-type]
        assert await consumer._read(Loading(), read, 1.0) == []  # type: ignore[arg-type]
    assert sent[1] == sent[0]  # the same XACK again, with the next read
    assert context.counters.acked == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
