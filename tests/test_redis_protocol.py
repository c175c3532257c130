"""The Redis client's pure parts: commands on the wire, keys, error replies, entry fields.

No server and no backend: what goes out for a command, which key a command is about (the
seam for Redis Cluster routing), which exception an error reply becomes, and the check
that lets a consumer skip decoding an entry (its ``t`` field confirmed by ``e``).
"""

from __future__ import annotations

import json

import pytest

from actorbus import TransportError
from actorbus._wire import encode
from actorbus.redis._errors import (
    TRANSIENT,
    AuthenticationFailed,
    ConnectionLost,
    GroupExists,
    NoGroup,
    PermissionDenied,
    Redirected,
    RedisError,
    ReplyError,
    Unavailable,
    reply_error,
)
from actorbus.redis._intake import names_type
from actorbus.redis._protocol import Command, command_key, fields_of, pack


def test_commands_are_packed_as_resp_arrays_of_bulk_strings() -> None:
    packed = pack([(b"XACK", "k", "g", 17), (b"PING",)])
    assert packed == (b"*4\r\n$4\r\nXACK\r\n$1\r\nk\r\n$1\r\ng\r\n$2\r\n17\r\n*1\r\n$4\r\nPING\r\n")
    assert pack([("SET", "é", b"\x00\r\n")]) == (
        b"*3\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$3\r\n\x00\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("command", "key"),
    [
        ((b"XADD", b"s", b"*", b"e", b"{}"), b"s"),
        ((b"XACK", "s", "g", b"1-0"), b"s"),
        ((b"XREADGROUP", b"GROUP", b"g", b"c", b"COUNT", 10, b"STREAMS", b"s", b">"), b"s"),
        ((b"xread", b"COUNT", 1, b"BLOCK", 5, b"streams", b"r", b"0"), b"r"),
        ((b"XGROUP", b"CREATE", b"s", b"g", b"$", b"MKSTREAM"), b"s"),
        ((b"XINFO", b"GROUPS", b"s"), b"s"),
        ((b"SET", b"alive", b"1", b"EX", 30), b"alive"),
        ((b"EVAL", b"return 1", 2, b"{t}:lease", b"{t}:events", b"v"), b"{t}:lease"),
        ((b"PING",), None),
        ((b"AUTH", b"user", b"pw"), None),
    ],
)
def test_each_command_of_the_bridge_names_its_key(command: Command, key: bytes | None) -> None:
    assert command_key(command) == key


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("NOGROUP No such key 's' or consumer group 'g' in XREADGROUP", NoGroup),
        ("BUSYGROUP Consumer Group name already exists", GroupExists),
        ("NOPERM this user has no permissions to access one of the keys", PermissionDenied),
        ("WRONGPASS invalid username-password pair or user is disabled.", AuthenticationFailed),
        ("NOAUTH Authentication required.", AuthenticationFailed),
        ("LOADING Redis is loading the dataset in memory", Unavailable),
        ("READONLY You can't write against a read only replica.", Unavailable),
        ("TRYAGAIN Multiple keys request during rehashing of slot", Unavailable),
        ("CLUSTERDOWN The cluster is down", Unavailable),
        ("MOVED 3999 127.0.0.1:6381", Redirected),
        ("ERR unknown command 'FOO'", ReplyError),
        ("OOM command not allowed when used memory > 'maxmemory'.", ReplyError),
        ("", ReplyError),
    ],
)
def test_an_error_reply_becomes_the_exception_of_its_code(
    reply: str, kind: type[ReplyError]
) -> None:
    error = reply_error(reply)
    assert type(error) is kind
    assert str(error) == reply
    assert error.code == (reply.split(" ", 1)[0] or "ERR")
    assert isinstance(error, TransportError)  # what a caller of publish may catch
    assert isinstance(error, TRANSIENT) == (kind is Unavailable)


def test_a_redirection_says_where_the_slot_is_served() -> None:
    moved = reply_error(b"MOVED 3999 127.0.0.1:6381")
    asked = reply_error("ASK 12182 [::1]:7002")
    assert isinstance(moved, Redirected)
    assert isinstance(asked, Redirected)
    assert (moved.ask, moved.slot, moved.host, moved.port) == (False, 3999, "127.0.0.1", 6381)
    assert (asked.ask, asked.slot, asked.host, asked.port) == (True, 12182, "[::1]", 7002)


def test_a_lost_connection_is_transient_and_a_redis_error() -> None:
    assert issubclass(ConnectionLost, RedisError)
    assert ConnectionLost in TRANSIENT
    assert not issubclass(ReplyError, ConnectionLost)


def test_an_entry_field_list_becomes_a_dict() -> None:
    assert fields_of([b"e", b"{}", b"t", b"x"]) == {b"e": b"{}", b"t": b"x"}
    assert fields_of([b"a", b"1", b"b", b"2", b"c", b"3"]) == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert fields_of([]) == {}


def cloudevent(**attributes: object) -> bytes:
    event = {"specversion": "1.0", "id": "1", "source": "s", "type": "job.created"}
    return json.dumps({**event, **attributes}).encode()


@pytest.mark.parametrize(
    ("raw", "confirmed"),
    [
        (cloudevent(), True),  # json.dumps: a space after the colon
        (cloudevent().replace(b" ", b""), True),
        (cloudevent(data={"n": 1}), True),
        (cloudevent(type="other.type"), False),  # t disagrees with e
        (cloudevent(type="job.created.v2"), False),
        (cloudevent(data={"type": "job.created"}), False),  # "type" twice: decode to know
        (cloudevent(data={"kind": "type"}), False),
        (b'{"data":{"a":1},"type":"job.created"}', False),  # a bracket before it
        (b'{"typ\\u0065":"job.created"}', False),  # escaped: not seen
        (b'{"type":"job.cre\\u0061ted"}', False),
        (b'{"type":"job.created', False),  # cut short
        (b"not json", False),
        (b"", False),
    ],
)
def test_an_entry_is_skipped_undecoded_only_if_e_names_the_type_t_names(
    raw: bytes, confirmed: bool
) -> None:
    assert names_type(raw, b"job.created") is confirmed


def test_what_actorbus_writes_confirms_its_type() -> None:
    from actorbus import Envelope, Scope  # noqa: PLC0415

    envelope = Envelope(type="job.created", data={"n": 1}, source="s", scope=Scope.APP)
    assert names_type(encode(envelope), b"job.created")
