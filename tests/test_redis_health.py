"""`Health` and the bridge's `Retry`: an outage's end cuts every backoff short.

Each part of the bridge (reader, acker, publisher, replies) backs off on its own while
Redis is away; the first one whose command succeeds ends the outage, and the others try
again then instead of at the end of their own delay. No Redis server needed.
"""

from __future__ import annotations

import logging
import ssl

import anyio
import pytest

from actorbus import Backoff
from actorbus.redis._errors import ConnectionLost
from actorbus.redis._health import BACKOFF, Health, Retry

pytestmark = pytest.mark.anyio


def health() -> Health:
    return Health("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0")


def retry(state: Health, initial: float, maximum: float = 10.0) -> Retry:
    return Retry(state, Backoff(initial=initial, maximum=maximum, jitter=0.5))


async def timed_sleep(backoff: Retry, took: list[float]) -> None:
    start = anyio.current_time()
    await backoff.sleep()
    took.append(anyio.current_time() - start)


async def test_a_backoff_during_an_outage_ends_when_the_outage_does() -> None:
    state = health()
    state.failed(ConnectionLost("refused"))
    took: list[float] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for _ in range(3):  # several parts of the bridge, backing off at once
                tasks.start_soon(timed_sleep, retry(state, 60, 60), took)
            await anyio.sleep(0.05)
            state.succeeded()
    assert len(took) == 3
    assert all(0.04 <= t < 5 for t in took)
    assert state.connected
    assert state.reconnects == 1


async def test_without_an_outage_a_backoff_sleeps_its_whole_delay() -> None:
    state = health()
    took: list[float] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(timed_sleep, retry(state, 0.4), took)
        await anyio.sleep(0.05)
        state.succeeded()  # nothing to end
    assert took[0] >= 0.2  # half the delay at least (jitter)


async def test_a_new_outage_is_not_ended_by_the_last_one() -> None:
    state = health()
    state.failed(ConnectionLost("refused"))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:  # a sleeper makes the outage's event
            tasks.start_soon(retry(state, 60, 60).sleep)
            await anyio.sleep(0.01)
            state.succeeded()
    state.failed(ConnectionLost("refused again"))
    took: list[float] = []
    await timed_sleep(retry(state, 0.4), took)
    assert took[0] >= 0.2
    assert state.outages == 2
    assert not state.connected


async def test_a_part_that_keeps_failing_keeps_to_its_backoff() -> None:
    """Others succeed all the time: the failing part is woken early only every other time."""
    state = health()
    backoff = retry(state, 0.1, 0.2)
    attempts = 0

    async def keep_failing() -> None:
        nonlocal attempts
        while True:
            attempts += 1
            state.failed(ConnectionLost("this connection is refused"))
            await backoff.sleep()

    async def keep_succeeding() -> None:
        while True:
            state.succeeded()
            await anyio.sleep(0.002)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(keep_failing)
        tasks.start_soon(keep_succeeding)
        await anyio.sleep(1.0)
        tasks.cancel_scope.cancel()
    # A whole delay (0.05-0.15 s, then 0.1-0.2 s) between any two early wake-ups: at most about 20
    # attempts in a second; woken after every success it would be hundreds.
    assert 4 <= attempts <= 25


def tls_failure(tls: ssl.SSLError) -> ConnectionLost:
    """What the bridge's connection raises for a TLS failure while connecting."""
    error = ConnectionLost(f"cannot reach Redis: {tls}")
    error.__cause__ = tls
    return error


async def test_each_tls_failure_of_an_outage_is_told_once_with_what_to_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "actorbus.redis")
    state = health()
    rejected = ssl.SSLCertVerificationError(1, "certificate verify failed")
    rejected.verify_code, rejected.verify_message = 19, "self-signed certificate in chain"
    cut_short = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    state.failed(ConnectionLost("connection to Redis lost: EndOfStream"))
    for _ in range(3):
        state.failed(tls_failure(cut_short))  # a server restarting: no advice
        state.failed(tls_failure(rejected))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("lost the connection to Redis")
    assert "the server's TLS certificate was rejected (self-signed" in messages[1]
    state.succeeded()
    state.failed(tls_failure(rejected))  # a new outage: told again
    advice = [message for message in caplog.messages if "cannot reconnect" in message]
    assert len(advice) == 2


def test_the_bridge_backs_off_with_the_cores_backoff() -> None:
    """One formula for every delay: `actorbus.Backoff`, 0.1 s doubling to 5 s, ±50 %."""
    assert isinstance(BACKOFF, Backoff)
    assert [BACKOFF.delay(n, rand=0.5) for n in (1, 2, 3, 7, 10)] == [0.1, 0.2, 0.4, 5.0, 5.0]
    assert BACKOFF.delay(1, rand=0.0) == pytest.approx(0.05)
    assert BACKOFF.delay(1, rand=1.0) == pytest.approx(0.15)


async def test_a_retry_counts_its_attempts_until_reset() -> None:
    waits: list[float] = []

    class Recorded(Health):
        async def wait_reconnected(self, delay: float) -> bool:
            waits.append(delay)
            return False

    backoff = Retry(Recorded("redis://h/0", "redis://h/0"), Backoff(initial=1, jitter=0))
    for _ in range(3):
        await backoff.sleep()
    backoff.reset()
    await backoff.sleep()
    assert waits == [1, 2, 4, 1]
