"""The wire (`actorbus._wire`), its JSON text (`_json_text`) and CloudEvents helpers.

Round trips through each module's own names, and every limit of `_json_text.read` at its
edge: the last size, depth, number and string accepted and the first refused. How whole
envelopes are read and refused is in `test_envelope.py` and `test_hostile_input.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from typing import Any

import attrs
import pytest

from actorbus import DecodeError, Envelope, Scope, _cloudevent, _json_text, event
from actorbus._wire import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    decode,
    decode_value,
    encode,
    encode_value,
)

UTC = dt.UTC


@event("wire.line")
class Line:
    sku: str
    quantity: int


@attrs.frozen
class Basket:
    owner: str
    lines: list[Line]
    placed: dt.datetime
    note: str | None = None


@dataclasses.dataclass
class Counter:
    value: int = 0
    tags: dict[str, float] = dataclasses.field(default_factory=dict)


BASKET = Basket("ann", [Line("a", 1), Line("é", 2)], dt.datetime(2024, 5, 1, 12, tzinfo=UTC))


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    """JSON text nested `depth` levels deep (a bare number at depth 0)."""
    return opener * depth + "1" + closer * depth


def nested_value(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def refusal(raw: bytes | str, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    """The reason `_json_text.read` gives for refusing `raw` (fails if it accepts it)."""
    with pytest.raises(DecodeError) as caught:
        _json_text.read(raw, max_bytes)
    return str(caught.value)


# -- round trips ---------------------------------------------------------------------------------


def test_encode_and_decode_are_the_envelopes_own_json() -> None:
    envelope = Envelope(
        type="wire.line",
        data=Line("a", 1),
        source="shop",
        id="e-1",
        time=dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
        subject="basket-1",
        scope=Scope.APP,
        headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "tenant": "é"},
    )
    written = encode(envelope)
    assert written == envelope.to_json()
    assert written.isascii()
    back = decode(written)
    assert back == Envelope.from_json(written)
    assert (back.type, back.source, back.id, back.time, back.subject, back.scope) == (
        envelope.type,
        envelope.source,
        envelope.id,
        envelope.time,
        envelope.subject,
        envelope.scope,
    )
    assert dict(back.headers) == dict(envelope.headers)
    assert back.data == {"sku": "a", "quantity": 1}  # plain data: classes are built on delivery


@pytest.mark.parametrize(
    ("data", "content_type", "read_back"),
    [
        (b"\x00\xff", "application/octet-stream", b"\x00\xff"),
        (bytearray(b"ab"), "application/octet-stream", b"ab"),
        (None, "application/json", None),
        ("text", "application/json", "text"),
        ([1, 2.5, True, None, {"k": "v"}], "application/json", [1, 2.5, True, None, {"k": "v"}]),
    ],
    ids=["bytes", "bytearray", "no data", "a string", "json values"],
)
def test_data_of_every_kind_survives_the_wire(
    data: object, content_type: str, read_back: object
) -> None:
    envelope = Envelope(type="wire.any", data=data, source="s")
    assert _cloudevent.content_type_for(data) == envelope.datacontenttype == content_type
    back = decode(encode(envelope))
    assert back.data == read_back
    assert back.datacontenttype == content_type


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, -0.0, 10**20, True, False, None], "é": "ünïcödé 😀", "": {}},
        '\u2028 line separator, \x00 nul, \\ backslash, " quote',
        [1.7976931348623157e308, 5e-324, -1.0],
        nested_value(MAX_DEPTH),
    ],
    ids=["mixed", "escapes", "float edges", "as deep as allowed"],
)
def test_write_is_compact_ascii_json_that_read_reads_back(value: object) -> None:
    text = _json_text.write(value)
    assert text == json.dumps(value, separators=(",", ":"), allow_nan=False)
    assert text.isascii()
    assert _json_text.read(text) == value
    assert _json_text.read(text.encode()) == value


@pytest.mark.parametrize(
    ("value", "error"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (object(), TypeError)],
    ids=["nan", "infinity", "an object"],
)
def test_write_refuses_what_json_cannot_hold(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        _json_text.write([value])


def test_write_of_a_value_that_contains_itself_ends_in_recursion_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        _json_text.write(loop)


# -- every limit at its edge -------------------------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, str, bytearray, memoryview])
def test_the_size_limit_counts_bytes_of_utf8_and_is_inclusive(kind: Any) -> None:
    text = '"' + "é" * 10 + '"'  # 12 characters, 22 bytes of UTF-8

    def raw(value: str) -> Any:
        return value if kind is str else kind(value.encode())

    assert _json_text.read(raw(text), max_bytes=22) == "é" * 10
    reason = refusal(raw(text), max_bytes=21)
    assert "exceeds max_message_bytes=21" in reason
    assert "22 bytes" in reason


@pytest.mark.parametrize(
    ("opener", "closer"), [("[", "]"), ('{"k":', "}")], ids=["lists", "objects"]
)
def test_the_depth_limit_is_inclusive(opener: str, closer: str) -> None:
    assert _json_text.read(nested(MAX_DEPTH, opener, closer)) is not None
    reason = refusal(nested(MAX_DEPTH + 1, opener, closer))
    assert f"nested deeper than {MAX_DEPTH} levels" in reason
    # Wide is not deep: many containers side by side at the limit.
    wide = "[" + ",".join([nested(MAX_DEPTH - 1, opener, closer)] * 50) + "]"
    assert len(_json_text.read(wide)) == 50


def test_brackets_in_strings_and_escapes_do_not_count_as_depth() -> None:
    inside = '"[[[{{{\\"]]]\\\\"'
    text = nested(MAX_DEPTH - 1).replace("1", "[" + inside + "]", 1)
    assert _json_text.read(text) is not None
    assert "nested deeper" in refusal(nested(MAX_DEPTH).replace("1", "[" + inside + "]", 1))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.7976931348623157e308", sys.float_info.max),
        ("-1.7976931348623157e308", -sys.float_info.max),
        ("5e-324", 5e-324),
        ("1e-400", 0.0),  # underflows to zero: a float, just not an exact one
        ("9" * 4300, int("9" * 4300)),
        ("-" + "9" * 4300, -int("9" * 4300)),
    ],
    ids=["largest float", "smallest float", "tiniest float", "underflow", "4300 digits", "-4300"],
)
def test_the_largest_numbers_are_read(text: str, value: object) -> None:
    assert _json_text.read(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.7976931348623159e308", "too large for a float"),  # rounds to infinity
        ("-1e309", "too large for a float"),
        ("9" * 4301, "4301 digits"),
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
    ],
    ids=["just over the largest float", "-1e309", "4301 digits", "NaN", "Infinity", "-Infinity"],
)
def test_numbers_past_the_limits_are_refused(text: str, reason: str) -> None:
    assert reason in refusal(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'"\ud83d\ude00"', "😀"),
        (r'"\uD83D\uDE00"', "😀"),
        (r'"\\ud800"', "\\ud800"),  # an escaped backslash, then letters
        (r'{"\ud83d\ude00":"\u00e9"}', {"😀": "é"}),
        ('"😀"', "😀"),
    ],
    ids=["a pair", "a pair in capitals", "an escaped backslash", "a key", "raw UTF-8"],
)
def test_surrogate_pairs_are_text(text: str, value: object) -> None:
    assert _json_text.read(text.encode()) == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (rb'"\ud800"', "lone UTF-16 surrogate"),
        (rb'"\udc00"', "lone UTF-16 surrogate"),
        (rb'"\ude00\ud83d"', "lone UTF-16 surrogate"),  # a pair the wrong way round
        (rb'{"\ud800":1}', "lone UTF-16 surrogate"),
        (rb'"\\\ud800"', "lone UTF-16 surrogate"),  # a backslash, then the escape
        (b'"\xed\xa0\x80"', "not UTF-8"),  # a surrogate encoded as if it were a character
        ('"\ud800"', "not valid Unicode"),  # a Python str holding one
    ],
    ids=["high", "low", "reversed", "in a key", "after a backslash", "encoded", "in a str"],
)
def test_lone_surrogates_are_refused(raw: bytes | str, reason: str) -> None:
    assert reason in refusal(raw)


# -- encode_value and decode_value ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [BASKET, Counter(3, {"x": 0.5}), [Line("a", 1)], {"at": BASKET.placed}, "plain", 7, None],
    ids=["attrs", "dataclass", "a list of events", "a datetime", "a string", "a number", "none"],
)
def test_encode_value_writes_the_json_an_envelopes_data_would_be(value: object) -> None:
    written = encode_value(value)
    assert written.isascii()
    as_data = json.loads(Envelope(type="wire.value", data=value, source="s").to_json())
    assert json.loads(written) == as_data.get("data")
    assert decode_value(written) == json.loads(written)
    assert decode_value(written.decode()) == decode_value(bytearray(written))


def test_a_value_round_trips_to_plain_data() -> None:
    assert decode_value(encode_value(BASKET)) == {
        "owner": "ann",
        "lines": [{"sku": "a", "quantity": 1}, {"sku": "é", "quantity": 2}],
        "placed": "2024-05-01T12:00:00+00:00",
        "note": None,
    }


def test_decode_value_has_no_size_limit() -> None:
    big = {"blob": "x" * (MAX_MESSAGE_BYTES + 1)}
    assert decode_value(encode_value(big)) == big


def test_encode_value_reads_back_at_the_depth_limit() -> None:
    value = nested_value(MAX_DEPTH)
    assert decode_value(encode_value(value)) == value


def _contains_itself() -> object:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (object(), "object"),
        ({"x": float("nan")}, "float values are not JSON compliant"),
        ([float("-inf")], "float values are not JSON compliant"),
        (_contains_itself(), "contains itself"),
        (nested_value(100_000), "nested too deeply"),
    ],
    ids=["an object", "nan", "infinity", "contains itself", "deeper than the stack"],
)
def test_encode_value_refuses_what_json_cannot_hold_with_a_type_error(
    value: object, reason: str
) -> None:
    with pytest.raises(TypeError, match=reason):
        encode_value(value)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff", "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"NaN", "NaN"),
        (nested(MAX_DEPTH + 1).encode(), "nested deeper"),
        (rb'"\ud800"', "surrogate"),
    ],
    ids=["not utf-8", "malformed", "nan", "too deep", "a lone surrogate"],
)
def test_decode_value_refuses_what_encode_value_cannot_write(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_value(raw)


@pytest.mark.parametrize(
    "value",
    [nested_value(MAX_DEPTH + 1), "\ud800", {"\udc00": 1}],
    ids=["one level too deep", "a lone surrogate", "a lone surrogate in a key"],
)
def test_what_encode_value_writes_decode_value_reads_back(value: object) -> None:
    """An entity's state that is saved must load again: refused when saved, or read back.

    A value `decode_value` refuses is refused by `encode_value` (TypeError), so an
    entity's commit fails at once instead of leaving a state no instance can load.
    """
    try:
        written = encode_value(value)
    except TypeError:
        return
    assert decode_value(written) == value


@pytest.mark.parametrize(
    "data",
    [nested_value(MAX_DEPTH), "\ud800"],
    ids=["one level too deep with the envelope", "a lone surrogate"],
)
def test_what_to_json_writes_from_json_reads_back(data: object) -> None:
    """An event a publisher could write is one its receivers can read (or it is refused)."""
    envelope = Envelope(type="wire.deep", data=data, source="s")
    try:
        written = encode(envelope)
    except TypeError:
        return
    assert decode(written).data == data


# -- CloudEvents helpers ---------------------------------------------------------------------------


def test_check_headers_gives_read_only_extension_attributes() -> None:
    original = {"traceparent": "00-x", "tenant42": "é"}
    checked = _cloudevent.check_headers(original)
    assert dict(checked) == original
    original["tenant42"] = "changed"
    assert checked["tenant42"] == "é"
    with pytest.raises(TypeError):
        checked["tenant42"] = "x"  # type: ignore[index]
    assert _cloudevent.check_headers(None) is _cloudevent.check_headers({})
    assert _cloudevent.check_headers(None) is _cloudevent.EMPTY_HEADERS


@pytest.mark.parametrize(
    ("headers", "error", "reason"),
    [
        ({"Upper": "x"}, ValueError, "lower-case"),
        ({"with-dash": "x"}, ValueError, "lower-case"),
        ({"a" * 65: "x"}, ValueError, "invalid header name"),
        ({"data": "x"}, ValueError, "reserved"),
        ({"scope": "x"}, ValueError, "reserved"),
        ({"tenant": 7}, TypeError, "must be a string, got int"),
    ],
    ids=["upper case", "a dash", "65 characters", "reserved", "scope", "not a string"],
)
def test_check_headers_refuses_what_is_not_an_extension_attribute(
    headers: dict[str, Any], error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        _cloudevent.check_headers(headers)


def test_the_longest_extension_name_is_accepted() -> None:
    name = "a" * 64
    assert dict(_cloudevent.check_headers({name: "x"})) == {name: "x"}
    assert decode(encode(Envelope(type="t", source="s", headers={name: "x"}))).headers[name] == "x"
