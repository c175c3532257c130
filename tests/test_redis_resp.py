"""`actorbus.redis._resp`: hiredis's reader and coredis's parser give the same replies.

Fed the same bytes, in one piece or split at every byte, both return the same values,
map server errors to the same coredis exceptions, say `MISSING` while a reply is
incomplete, and refuse bytes that are not RESP. (Synchronous: no backend involved.)
"""

from __future__ import annotations

import pytest
from coredis.exceptions import (
    AuthorizationError,
    InvalidResponse,
    ReadOnlyError,
    ResponseError,
    StreamConsumerGroupError,
)

from actorbus.redis._resp import (
    HAVE_HIREDIS,
    MISSING,
    CoredisReplies,
    HiredisReplies,
    new_replies,
)

READERS = [CoredisReplies, HiredisReplies]

ENTRY = b'*2\r\n$3\r\n1-1\r\n*4\r\n$1\r\ne\r\n$5\r\n{"a"}\r\n$1\r\nt\r\n$1\r\nx\r\n'
STREAM = (
    b"*1\r\n*2\r\n$6\r\nevents\r\n*2\r\n" + ENTRY + ENTRY.replace(b"1-1", b"1-2")
)  # an XREADGROUP reply with two entries
WIRE = (
    b"+OK\r\n"  # simple string
    b":42\r\n"  # integer
    b"$-1\r\n"  # nil bulk
    b"*-1\r\n"  # nil array (a blocked read that timed out)
    b"*0\r\n"  # empty array
    b"$0\r\n\r\n"  # empty bulk
    + STREAM
    + b"*2\r\n-READONLY You can't write against a read only replica.\r\n:1\r\n"  # EXEC's shape
    b"-NOGROUP No such key 'events' or consumer group 'g'\r\n"
    b"-READONLY You can't write against a read only replica.\r\n"
    b"-NOPERM this user has no permissions to run the 'xgroup|setid' command\r\n"
    b"-ERR unknown thing\r\n"
)
EXPECTED = [
    b"OK",
    42,
    None,
    None,
    [],
    b"",
    [[b"events", [[b"1-1", [b"e", b'{"a"}', b"t", b"x"]], [b"1-2", [b"e", b'{"a"}', b"t", b"x"]]]]],
]
ERRORS = [StreamConsumerGroupError, ReadOnlyError, AuthorizationError, ResponseError]


def drain(replies: HiredisReplies | CoredisReplies) -> list[object]:
    out = []
    while (reply := replies.next()) is not MISSING:
        out.append(reply)
    return out


@pytest.mark.parametrize("reader", READERS)
def test_replies_in_one_piece(reader: type[HiredisReplies | CoredisReplies]) -> None:
    replies = reader()
    assert replies.next() is MISSING
    replies.feed(WIRE)
    got = drain(replies)
    assert got[: len(EXPECTED)] == EXPECTED
    nested, *errors = got[len(EXPECTED) :]
    assert isinstance(nested, list)
    assert [type(nested[0]), nested[1]] == [ReadOnlyError, 1]
    assert [type(error) for error in errors] == ERRORS
    assert "No such key" in str(errors[0])
    assert replies.next() is MISSING


@pytest.mark.parametrize("reader", READERS)
def test_replies_fed_a_byte_at_a_time_are_the_same(
    reader: type[HiredisReplies | CoredisReplies],
) -> None:
    whole = reader()
    whole.feed(WIRE)
    expected = [repr(reply) for reply in drain(whole)]
    replies = reader()
    got: list[object] = []
    for index in range(len(WIRE)):
        replies.feed(WIRE[index : index + 1])
        got.extend(drain(replies))
    assert [repr(reply) for reply in got] == expected


def test_both_readers_agree() -> None:
    results = []
    for reader in READERS:
        replies = reader()
        replies.feed(WIRE)
        results.append([(type(reply), repr(reply)) for reply in drain(replies)])
    assert results[0] == results[1]


@pytest.mark.parametrize("reader", READERS)
def test_bytes_that_are_not_resp_are_an_invalid_response(
    reader: type[HiredisReplies | CoredisReplies],
) -> None:
    replies = reader()
    replies.feed(b"?what\r\n")
    with pytest.raises(InvalidResponse):
        replies.next()


def test_the_redis_extra_parses_with_hiredis() -> None:
    assert HAVE_HIREDIS
    assert isinstance(new_replies(), HiredisReplies)
