"""Leases, fencing tokens and the partitioned layout, against a real redis-server.

The scripts of `actorbus.redis._scripts` are sent directly (by a plain RESP client, as
another process would), so that what Redis itself refuses is seen: a member whose lease
is gone cannot acknowledge, save a state or claim, whatever it believes.
"""

from __future__ import annotations

import anyio
import pytest
from redis_support import RedisServer, events_key, new_app, raw_client

from actorbus import ActorSystem
from actorbus.redis import RedisTransport
from actorbus.redis._config import Keys
from actorbus.redis._scripts import (
    FENCED,
    acknowledge,
    acquire,
    claim,
    members,
    release,
    renew,
)
from actorbus.redis._slots import hash_slot

pytestmark = pytest.mark.anyio


def keys_of(app: str, partitions: int = 4) -> Keys:
    return Keys("actorbus", app, partitions)


# -- the layout ------------------------------------------------------------------------------


def test_every_key_of_a_partition_shares_its_slot_and_one_partition_keeps_the_old_keys() -> None:
    keys = keys_of("shop", 8)
    for partition in range(8):
        slots = {
            hash_slot(keys.stream(partition)),
            hash_slot(keys.lease(partition, "g:work")),
            hash_slot(keys.epoch(partition, "g:work")),
            hash_slot(keys.saves(partition, "g:work")),
            hash_slot(keys.state(partition, "Account", "acc-{42}")),
        }
        assert len(slots) == 1
    assert len({hash_slot(key) for key in keys.streams}) == 8
    assert keys.stream(3).startswith("actorbus:app:shop:{shop.p3.")
    single = keys_of("shop", 1)
    assert single.streams == ("actorbus:app:shop:events",)
    # One partition: its other keys take the stream's slot, with its name as their tag.
    state = single.state(0, "Account", "a-{1}")
    assert state == "actorbus:app:shop:{actorbus:app:shop:events}:state:Account:a-{1}"
    assert hash_slot(state) == hash_slot(single.lease(0, "g:entity:A")) == hash_slot(single.events)


# -- leases ----------------------------------------------------------------------------------


async def test_a_lease_is_taken_once_renewed_by_its_holder_only_and_released(
    redis_server: RedisServer,
) -> None:
    keys = keys_of(new_app())
    lease, epoch = keys.lease(0, "g:work"), keys.epoch(0, "g:work")
    saves = keys.saves(0, "g:work")
    async with raw_client(redis_server.url) as raw:
        taken, value, count = await raw(*acquire(lease, epoch, saves, "w1", "n1", 10_000))
        assert (taken, value, count) == (1, b"1:w1:n1", 0)
        assert await raw(*acquire(lease, epoch, saves, "w2", "n2", 10_000)) == [0, b"1:w1:n1"]
        assert await raw(*renew(lease, "1:w2:n2", 10_000)) == 0
        await raw("PEXPIRE", lease, 500)
        assert await raw(*renew(lease, "1:w1:n1", 10_000)) == 1
        assert await raw("PTTL", lease) > 5_000
        assert await raw(*release(lease, "1:w2:n2")) == 0  # not its lease
        assert await raw(*release(lease, "1:w1:n1")) == 1
        # Each acquisition has a greater fencing token than the ones before it.
        assert await raw(*acquire(lease, epoch, saves, "w2", "n2", 50)) == [1, b"2:w2:n2", 0]
        await anyio.sleep(0.1)  # expired
        assert await raw(*acquire(lease, epoch, saves, "w1", "n3", 10_000)) == [
            1,
            b"3:w1:n3",
            0,
        ]


async def pending_entry(raw: object, stream: str, group: str) -> bytes:
    """Add an entry to `stream`, read it in `group` (pending); return its id."""
    await raw("XGROUP", "CREATE", stream, group, "$", "MKSTREAM")  # type: ignore[operator]
    entry_id: bytes = await raw("XADD", stream, "*", "e", "{}")  # type: ignore[operator]
    await raw("XREADGROUP", "GROUP", group, "old", "STREAMS", stream, ">")  # type: ignore[operator]
    return entry_id


async def test_a_stale_token_can_neither_acknowledge_nor_save_nor_claim(
    redis_server: RedisServer,
) -> None:
    keys = keys_of(new_app())
    stream, state = keys.stream(2), keys.state(2, "Account", "a-1")
    lease, epoch = keys.lease(2, "g:work"), keys.epoch(2, "g:work")
    saves = keys.saves(2, "g:work")
    async with raw_client(redis_server.url) as raw:
        entry = await pending_entry(raw, stream, "g:work")
        _, old, _ = await raw(*acquire(lease, epoch, saves, "old", "n1", 50))
        await anyio.sleep(0.1)  # the old owner paused past its lease...
        _, new, _ = await raw(*acquire(lease, epoch, saves, "new", "n2", 10_000))  # ...taken
        old, new = old.decode(), new.decode()

        stale = acknowledge(
            lease, old, stream, "g:work", [entry], [(state, b'{"n":1}')], (saves, 0)
        )
        assert await raw(*stale) == FENCED
        assert await raw.pending(stream, "g:work") == 1  # still pending, for the new owner
        assert await raw("EXISTS", state) == 0  # and its state not saved
        stolen = claim(lease, old, stream, "g:work", "old", 0, [entry])
        assert await raw(*stolen) == FENCED
        assert [c[b"name"] for c in await raw.consumers(stream, "g:work")] == [b"old"]

        (claimed,) = await raw(*claim(lease, new, stream, "g:work", "new", 0, [entry]))
        assert claimed[0] == entry
        good = acknowledge(lease, new, stream, "g:work", [entry], [(state, b'{"n":2}')], (saves, 0))
        assert await raw(*good) == 1
        assert await raw.pending(stream, "g:work") == 0
        assert await raw("GET", state) == b'{"n":2}'


async def test_a_token_from_before_redis_lost_its_data_stays_stale(
    fresh_redis_server: RedisServer,
) -> None:
    """Without persistence the counter restarts; the nonce still tells the tenures apart."""
    keys = keys_of(new_app())
    stream = keys.stream(0)
    lease, epoch = keys.lease(0, "g:work"), keys.epoch(0, "g:work")
    saves = keys.saves(0, "g:work")
    async with raw_client(fresh_redis_server.url) as raw:
        _, before, _ = await raw(*acquire(lease, epoch, saves, "w1", "n1", 10_000))
        await raw("FLUSHALL")
        entry = await pending_entry(raw, stream, "g:work")
        _, after, _ = await raw(*acquire(lease, epoch, saves, "w1", "n2", 10_000))
        assert before.split(b":")[0] == after.split(b":")[0] == b"1"
        assert await raw(*acknowledge(lease, before.decode(), stream, "g:work", [entry])) == FENCED
        assert await raw(*acknowledge(lease, after.decode(), stream, "g:work", [entry])) == 1


async def test_many_entries_and_states_go_in_one_script(redis_server: RedisServer) -> None:
    """XACK is called a thousand ids at a time: Lua's unpack has a limit."""
    keys = keys_of(new_app(), 1)
    stream = keys.stream(0)
    lease, epoch = keys.lease(0, "g:work"), keys.epoch(0, "g:work")
    saves = keys.saves(0, "g:work")
    async with raw_client(redis_server.url) as raw:
        await raw("XGROUP", "CREATE", stream, "g:work", "$", "MKSTREAM")
        for _ in range(5):
            await raw("XADD", stream, "*", "e", "{}")
        read = await raw.read_group("g:work", "w1", stream, count=5)
        ids = [entry_id for entry_id, _ in read] * 1000  # repeats are acknowledged once
        states = [(keys.state(0, "ns", f"k{n}"), b"%d" % n) for n in range(3)]
        _, value, _ = await raw(*acquire(lease, epoch, saves, "w1", "n1", 10_000))
        acknowledgement = acknowledge(
            lease, value.decode(), stream, "g:work", ids, states, (saves, 0)
        )
        assert await raw(*acknowledgement) == 5
        assert await raw("MGET", *(key for key, _ in states)) == [b"0", b"1", b"2"]


async def test_members_expire_on_redis_clock_and_leave_at_once(redis_server: RedisServer) -> None:
    key = keys_of(new_app()).members("g:work")
    async with raw_client(redis_server.url) as raw:

        async def live(*command: bytes | str | int) -> list[bytes]:
            return sorted(await raw(*command))

        assert await live(*members(key, "w1", 10_000, live=True)) == [b"w1"]
        assert await live(*members(key, "w2", 100, live=True)) == [b"w1", b"w2"]
        await anyio.sleep(0.2)
        assert await live(*members(key, "w3", 10_000, live=True)) == [b"w1", b"w3"]
        assert await live(*members(key, "w1", 10_000, live=False)) == [b"w3"]
        assert 0 < await raw("PTTL", key) <= 11_000  # the set goes when nobody beats
        await live(*members(key, "w3", 10_000, live=False))
        assert await raw("EXISTS", key) == 0


# -- the number of partitions ----------------------------------------------------------------


async def test_an_instance_with_another_number_of_partitions_is_refused(
    redis_server: RedisServer,
) -> None:
    app = new_app()
    async with ActorSystem(app, transport=RedisTransport(redis_server.url, partitions=4)):
        with pytest.raises(ValueError, match=r"partitions=2\) does not match") as caught:
            async with ActorSystem(app, transport=RedisTransport(redis_server.url, partitions=2)):
                pass
    message = str(caught.value)
    assert "started with partitions=4" in message
    assert f"actorbus:app:{app}:meta" in message
    assert "Changing the number of partitions" in message  # where the guide says how
    async with ActorSystem(app, transport=RedisTransport(redis_server.url, partitions=4)):
        pass  # the same number is welcome, after the first instance stopped too


async def test_an_application_from_before_partitions_has_one(redis_server: RedisServer) -> None:
    app = new_app()
    async with raw_client(redis_server.url) as raw:
        await raw("XADD", events_key(app), "*", "e", "{}")  # its one stream, no record
    with pytest.raises(ValueError, match="started with partitions=1"):
        async with ActorSystem(app, transport=RedisTransport(redis_server.url, partitions=8)):
            pass
    async with ActorSystem(app, transport=RedisTransport(redis_server.url)):
        pass


async def test_partition_tags_need_names_without_braces(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        async with ActorSystem(
            "shop{eu}", transport=RedisTransport(redis_server.url, partitions=2)
        ):
            pass


@pytest.mark.parametrize("partitions", [0, -1, 1025, 2.0, True, "8"])
def test_the_number_of_partitions_is_checked(partitions: object) -> None:
    with pytest.raises(ValueError, match=r"partitions=\.\.\.") as caught:
        RedisTransport(partitions=partitions)  # type: ignore[arg-type]
    assert "from 1 to 1024" in str(caught.value)


def test_the_lease_is_checked() -> None:
    with pytest.raises(ValueError, match=r"lease=\.\.\.\) must be > 0"):
        RedisTransport(lease=0)
