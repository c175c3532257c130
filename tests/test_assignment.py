"""The target assignment of a partitioned group's partitions to its members (no Redis).

Every member computes it from the same member list, so it must be a function of that
list alone; it must be balanced within one, and move few partitions when members come
and go (rendezvous hashing).
"""

from __future__ import annotations

import itertools
import random

import pytest

from actorbus._assignment import assign, weight

MEMBERS = [f"worker-{n}" for n in range(12)]


def owners(assignment: dict[str, frozenset[int]]) -> dict[int, str]:
    """Partition -> its member; checks that each partition has exactly one."""
    found: dict[int, str] = {}
    for member, partitions in assignment.items():
        for partition in partitions:
            assert partition not in found, f"partition {partition} assigned twice"
            found[partition] = member
    return found


@pytest.mark.parametrize("partitions", [1, 2, 7, 8, 16, 64, 100])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 12])
def test_every_partition_has_one_owner_and_shares_are_within_one(
    partitions: int, count: int
) -> None:
    members = MEMBERS[:count]
    assignment = assign("g:work", members, partitions)
    assert sorted(assignment) == sorted(members)  # every member is a key, maybe empty
    assert sorted(owners(assignment)) == list(range(partitions))
    sizes = [len(parts) for parts in assignment.values()]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == partitions


def test_it_depends_on_the_set_of_members_only() -> None:
    members = MEMBERS[:5]
    expected = assign("g:work", members, 32)
    for _ in range(5):
        shuffled = random.sample(members, len(members))
        assert assign("g:work", shuffled + shuffled[:2], 32) == expected  # order, repeats


def test_its_values_never_change_silently() -> None:
    """Members of different versions must agree: the weight is a fixed function."""
    # BLAKE2b-64 of "g:work\0worker-1\00" (hashlib.blake2b(..., digest_size=8)).
    assert weight("g:work", "worker-1", 0) == 0x8AA4E127A94390FA
    assert assign("g:work", ["a", "b", "c"], 8) == {
        "a": frozenset({2, 5}),
        "b": frozenset({0, 4, 7}),
        "c": frozenset({1, 3, 6}),
    }


def test_groups_spread_differently() -> None:
    """Partition 0 of every group does not land on the same member."""
    first = {owners(assign(f"g:{n}", MEMBERS[:4], 8))[0] for n in range(20)}
    assert len(first) > 1


@pytest.mark.parametrize("partitions", [8, 16, 64])
def test_a_joining_member_takes_partitions_and_the_others_mostly_stay(partitions: int) -> None:
    for count in range(1, 8):
        before = owners(assign("g:work", MEMBERS[:count], partitions))
        after = owners(assign("g:work", MEMBERS[: count + 1], partitions))
        newcomer = MEMBERS[count]
        moved = [p for p in range(partitions) if before[p] != after[p]]
        to_newcomer = [p for p in moved if after[p] == newcomer]
        assert len(to_newcomer) >= partitions // (count + 1)
        # Capacities can shift a few between the old members; most moves are to the new one.
        assert len(moved) - len(to_newcomer) <= count, (count, moved)


@pytest.mark.parametrize("partitions", [8, 16, 64])
def test_a_leaving_member_mostly_gives_away_its_own(partitions: int) -> None:
    for count in range(2, 9):
        members = MEMBERS[:count]
        before = owners(assign("g:work", members, partitions))
        for leaver in members:
            after = owners(assign("g:work", [m for m in members if m != leaver], partitions))
            moved = [p for p in range(partitions) if before[p] != after[p]]
            others = [p for p in moved if before[p] != leaver]
            assert len(others) <= count, (count, leaver, others)


def test_churn_in_any_order_ends_where_a_fresh_start_would() -> None:
    """No history: the target for a member list is the same however the list was reached."""
    members = MEMBERS[:6]
    final = assign("g:work", members, 24)
    for order in itertools.islice(itertools.permutations(members), 10):
        current: list[str] = []
        for member in order:
            current.append(member)
            assign("g:work", current, 24)
        assert assign("g:work", current, 24) == final


def test_no_members_no_assignment() -> None:
    assert assign("g:work", [], 8) == {}
