"""Hash slots as Redis Cluster computes them, and the spread of partition tags."""

from __future__ import annotations

import pytest

from actorbus.redis._slots import SLOTS, crc16, hash_slot, partition_tag


def test_crc16_is_xmodem() -> None:
    assert crc16(b"123456789") == 0x31C3  # the check value of CRC-16/XMODEM


# Each expected slot was read from a cluster-enabled redis-server 7.0 (CLUSTER KEYSLOT).
@pytest.mark.parametrize(
    ("key", "slot"),
    [
        ("foo", 12182),
        ("123456789", 12739),
        ("{user1000}.following", 3443),
        ("foo{}{bar}", 8363),  # an empty tag does not count: the whole key
        ("foo{{bar}}zap", 4015),  # the tag is "{bar"
        ("foo{bar}{zap}", 5061),  # the first tag only
        ("actorbus:app:shop:{shop.p3.0}:events", 9140),
        ("ü{x}", 16287),
    ],
)
def test_hash_slot_agrees_with_redis(key: str, slot: int) -> None:
    assert hash_slot(key) == slot
    assert hash_slot(key.encode()) == slot


@pytest.mark.parametrize("partitions", [1, 3, 8, 12, 64, 256])
def test_each_partition_tag_falls_in_its_own_range_of_slots(partitions: int) -> None:
    for partition in range(partitions):
        slot = hash_slot("{" + partition_tag("shop", partition, partitions) + "}")
        assert partition * SLOTS // partitions <= slot < (partition + 1) * SLOTS // partitions


def test_partition_tags_never_change() -> None:
    assert [partition_tag("shop", p, 4) for p in range(4)] == [
        "shop.p0.3",
        "shop.p1.1",
        "shop.p2.3",
        "shop.p3.1",
    ]
    assert partition_tag("shop", 0, 64) == "shop.p0.31"
    assert partition_tag("shop", 2, 64) == "shop.p2.60"
