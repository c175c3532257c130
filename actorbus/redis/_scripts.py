"""The Lua scripts of partition ownership: leases, fenced acknowledgements and claims.

Redis runs a script atomically, so "check the lease, then act" cannot be split by another
client's command. Every script names its keys in ``KEYS`` and they share one hash tag
(the partition's, see `actorbus.redis._config.Keys`), so each runs on one Redis Cluster
slot; the membership script has one key.

A **lease** is the key ``…:lease:{group}`` of a partition, holding the owner's *lease
value* ``<epoch>:<instance>:<nonce>``, with a time to live of ``lease`` seconds. The
*epoch* is the fencing token: a counter per (group, partition) incremented at each
acquisition, so every tenure has a greater one than the tenures before it. The nonce
makes each acquisition's value unique even if Redis lost its data (and the counter with
it). A command of an owner is carried out only if the lease holds exactly its value:
whoever lost the lease — expired during a pause, taken over after a restart of Redis —
is refused by Redis itself (a script returns `FENCED`).

Entity states are saved by the acknowledgement that carries them, which also counts
the saves of the partition (``…:saves:{group}``, one more per save) and names the count
it expects: the owner learns the count when it acquires the lease and follows it with
each save. A count that differs means Redis lost saves it had acknowledged (a restart
with ``appendfsync everysec``, a failover to a replica that had not received them), so
the states the owner holds in memory are newer than Redis's: the script refuses
(`DIVERGED`), and the owner stops using the partition, whose next tenure reads the
states from Redis again. A count one more than expected is this very save, applied
already and sent again after its reply was lost (`RESENT`).

Scripts are sent with ``EVAL`` each time (never ``EVALSHA``): Redis caches them by digest,
and a restarted Redis, which forgot its scripts, needs no ``SCRIPT LOAD`` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actorbus.redis._protocol import Command

__all__ = [
    "DIVERGED",
    "FENCED",
    "RESENT",
    "acknowledge",
    "acquire",
    "claim",
    "members",
    "release",
    "renew",
]

FENCED: Final = -1
"""What a fenced script answers when the lease does not hold the caller's value."""
DIVERGED: Final = -2
"""What the acknowledgement answers when the partition's saves are not those expected."""
RESENT: Final = -3
"""What the acknowledgement answers when its save was applied already (a resend)."""

_ACQUIRE: Final = b"""
local holder = redis.call('GET', KEYS[1])
if holder then return {0, holder} end
local epoch = redis.call('INCR', KEYS[2])
local value = epoch .. ':' .. ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
return {1, value, tonumber(redis.call('GET', KEYS[3]) or '0')}
"""

_RENEW: Final = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE: Final = b"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The checks write nothing, and XACK comes first: if it fails (the group is gone),
# nothing is written; once it wrote, an out-of-memory Redis still lets the rest of the
# script write, so a state is never saved without its acknowledgement, nor the other way
# round. (XACK takes the ids a thousand at a time: Lua's `unpack` has a limit of a few
# thousand.) KEYS: lease, stream, then with states the saves counter and the state keys;
# ARGV: lease value, group, n, the n ids, then with states the expected count and the
# states.
_ACKNOWLEDGE: Final = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[3])
local saving = #KEYS > 2
if saving then
  local saves = tonumber(redis.call('GET', KEYS[3]) or '0')
  local expected = tonumber(ARGV[n + 4])
  if saves == expected + 1 then return -3 end
  if saves ~= expected then return -2 end
end
local acked = 0
for i = 4, 3 + n, 1000 do
  acked = acked + redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, i, math.min(i + 999, 3 + n)))
end
if saving then
  redis.call('INCR', KEYS[3])
  for i = 4, #KEYS do redis.call('SET', KEYS[i], ARGV[n + i + 1]) end
end
return acked
"""

_CLAIM: Final = b"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('XCLAIM', KEYS[2], ARGV[2], ARGV[3], ARGV[4], unpack(ARGV, 5))
"""

# The members' expiry times are Redis's own clock (TIME), so members on machines whose
# clocks disagree still agree on who is live. The set itself goes a second after its
# last member expired.
_MEMBERS: Final = b"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + 1000) end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def _eval(script: bytes, keys: Sequence[str], args: Sequence[bytes | str | int]) -> Command:
    return (b"EVAL", script, len(keys), *keys, *args)


def acquire(
    lease: str, epoch: str, saves: str, instance: str, nonce: str, lease_ms: int
) -> Command:
    """Take the lease if nobody holds it, else not.

    Answers ``[1, value, saves]`` (`saves`: the partition's count of saves so far), or
    ``[0, holder's value]``.
    """
    return _eval(_ACQUIRE, (lease, epoch, saves), (instance, nonce, lease_ms))


def renew(lease: str, value: str, lease_ms: int) -> Command:
    """Extend the lease by `lease_ms` from now if it holds `value`: 1, else 0."""
    return _eval(_RENEW, (lease,), (value, lease_ms))


def release(lease: str, value: str) -> Command:
    """Delete the lease if it holds `value`: 1, else 0."""
    return _eval(_RELEASE, (lease,), (value,))


def acknowledge(
    lease: str,
    value: str,
    stream: str,
    group: str,
    entry_ids: Sequence[bytes],
    states: Sequence[tuple[str, bytes]] = (),
    saves: tuple[str, int] | None = None,
) -> Command:
    """XACK `entry_ids` and SET `states` (key, value) at once, if the lease holds `value`.

    With `states`, `saves` is the partition's saves counter and the count expected: the
    states are saved only if Redis holds that count, which the save increments.
    Answers how many entries were acknowledged, or `FENCED`, `DIVERGED` (nothing done)
    or `RESENT` (done before).
    """
    keys = [lease, stream]
    args: list[bytes | str | int] = [value, group, len(entry_ids), *entry_ids]
    if states:
        assert saves is not None  # noqa: S101 - states are only saved with their count
        keys += [saves[0], *(key for key, _ in states)]
        args += [saves[1], *(state for _, state in states)]
    return _eval(_ACKNOWLEDGE, keys, args)


def claim(
    lease: str,
    value: str,
    stream: str,
    group: str,
    consumer: str,
    min_idle: int,
    entry_ids: Sequence[bytes],
) -> Command:
    """XCLAIM `entry_ids` for `consumer` if the lease holds `value` (else `FENCED`)."""
    return _eval(_CLAIM, (lease, stream), (value, group, consumer, min_idle, *entry_ids))


def members(key: str, instance: str, ttl_ms: int, *, live: bool) -> Command:
    """Announce `instance` (for `ttl_ms`), or withdraw it; answer the live members."""
    return _eval(_MEMBERS, (key,), (instance, ttl_ms, b"1" if live else b"0"))
