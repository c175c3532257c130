"""`Envelope`: CloudEvents v1.0 context attributes, defaults, and the structured-mode dict."""

import copy
import dataclasses
import datetime as dt
import json
import weakref
from typing import Any

import attrs
import hypothesis
import pytest
from hypothesis import strategies as st

from actorbus import (
    Actor,
    ActorbusError,
    ActorSystem,
    DecodeError,
    Envelope,
    Scope,
    _cloudevent,
    event,
    handle,
)
from actorbus._envelope import new_envelope, with_data
from actorbus._wire import decode, encode

UTC = dt.UTC
_AT = dt.datetime(2024, 5, 1, 12, tzinfo=UTC)


@event("envelope.order.created")
class OrderCreated:
    order_id: str
    amount: float
    at: dt.datetime


def cloudevent(**overrides: Any) -> dict[str, Any]:
    """A minimal valid CloudEvents structured-mode dict, with some attributes changed."""
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "shop",
        "type": "envelope.order.created",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


# -- defaults -------------------------------------------------------------------------------


def test_defaults() -> None:
    before = dt.datetime.now(UTC)
    envelope = Envelope(type="envelope.test", data={"a": 1})
    after = dt.datetime.now(UTC)

    assert envelope.type == "envelope.test"
    assert envelope.data == {"a": 1}
    assert envelope.specversion == "1.0"
    assert envelope.datacontenttype == "application/json"
    assert envelope.subject is None
    assert dict(envelope.headers) == {}
    assert envelope.source == ""  # filled in by publish
    assert isinstance(envelope.id, str)
    assert envelope.id
    assert envelope.time.tzinfo is not None
    assert envelope.time.utcoffset() == dt.timedelta(0)
    assert before <= envelope.time <= after


def test_ids_are_unique() -> None:
    ids = {Envelope(type="envelope.test").id for _ in range(1000)}
    assert len(ids) == 1000


def test_takes_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        Envelope("envelope.test")  # type: ignore[misc]


def test_explicit_attributes_are_kept() -> None:
    time = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    envelope = Envelope(
        type="envelope.test",
        data=[1, 2],
        source="billing",
        id="abc",
        time=time,
        subject="order-7",
        datacontenttype="application/json",
        scope=Scope.APP,
        headers={"traceparent": "00-abc-def-01"},
    )
    assert (envelope.source, envelope.id, envelope.time, envelope.subject) == (
        "billing",
        "abc",
        time,
        "order-7",
    )
    assert envelope.scope is Scope.APP
    assert dict(envelope.headers) == {"traceparent": "00-abc-def-01"}


def test_is_frozen() -> None:
    envelope = Envelope(type="envelope.test")
    with pytest.raises(AttributeError):
        envelope.type = "other"  # type: ignore[misc]


def test_headers_cannot_be_changed_through_the_envelope_or_the_original_dict() -> None:
    headers = {"correlationid": "c-1"}
    envelope = Envelope(type="envelope.test", headers=headers)
    headers["correlationid"] = "changed"
    assert envelope.headers["correlationid"] == "c-1"
    with pytest.raises(TypeError):
        envelope.headers["correlationid"] = "changed"  # type: ignore[index]


@pytest.mark.parametrize("name", ["Traceparent", "correlation-id", "with space", "", "id", "type"])
def test_header_names_must_be_valid_extension_attribute_names(name: str) -> None:
    """Headers travel as CloudEvents extension attributes: lower-case alnum, not reserved."""
    with pytest.raises(ValueError, match="header"):
        Envelope(type="envelope.test", headers={name: "x"})


# -- time zones ----------------------------------------------------------------------------


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Envelope(type="envelope.test", time=dt.datetime(2024, 5, 1, 12, 0))  # noqa: DTZ001


def test_aware_time_is_converted_to_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    local = dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris)
    envelope = Envelope(type="envelope.test", time=local)
    assert envelope.time == local  # the same instant
    assert envelope.time.utcoffset() == dt.timedelta(0)
    assert envelope.time.hour == 12


def test_cloudevent_time_is_rfc3339_utc() -> None:
    time = dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)
    out = Envelope(type="envelope.test", source="s", time=time).to_cloudevent()
    assert isinstance(out["time"], str)
    assert out["time"].startswith("2024-05-01T12:30:15.25")
    assert out["time"].endswith(("Z", "+00:00"))
    assert dt.datetime.fromisoformat(out["time"]) == time


def test_cloudevent_time_with_an_offset_is_read_as_utc() -> None:
    envelope = Envelope.from_cloudevent(cloudevent(time="2024-05-01T14:00:00+02:00"))
    assert envelope.time == dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert envelope.time.utcoffset() == dt.timedelta(0)


def test_cloudevent_time_with_z_suffix() -> None:
    envelope = Envelope.from_cloudevent(cloudevent(time="2024-05-01T12:00:00Z"))
    assert envelope.time == dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("time", [None, "null"])
def test_a_cloudevent_without_time_stays_without_one(time: str | None) -> None:
    """CloudEvents makes `time` optional: reading must not invent one (nor write it back)."""
    raw = b'{"specversion":"1.0","id":"e-1","source":"s","type":"t.x","data":1'
    raw += b',"time":null}' if time else b"}"
    envelope = Envelope.from_json(raw)
    assert envelope.time is None
    assert Envelope.from_json(raw) == envelope  # the same bytes read twice: the same event
    assert "time" not in envelope.to_cloudevent()
    assert b'"time"' not in envelope.to_json()
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_an_envelope_may_be_built_without_a_time() -> None:
    envelope = Envelope(type="t.x", source="s", time=None)
    assert envelope.time is None
    assert "time" not in envelope.to_cloudevent()


# -- to_cloudevent -------------------------------------------------------------------------


def test_to_cloudevent_is_the_structured_mode_dict() -> None:
    at = dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    envelope = Envelope(
        type="envelope.order.created",
        data=OrderCreated("o-1", 9.5, at),
        source="shop",
        id="evt-1",
        time=at,
        subject="o-1",
    )
    out = envelope.to_cloudevent()
    assert out["specversion"] == "1.0"
    assert out["id"] == "evt-1"
    assert out["source"] == "shop"
    assert out["type"] == "envelope.order.created"
    assert out["subject"] == "o-1"
    assert out["datacontenttype"] == "application/json"
    assert out["data"]["order_id"] == "o-1"
    assert out["data"]["amount"] == 9.5
    assert dt.datetime.fromisoformat(out["data"]["at"]) == at


def test_to_cloudevent_is_json_ready() -> None:
    envelope = Envelope(
        type="envelope.order.created",
        data=OrderCreated("o-1", 9.5, dt.datetime.now(UTC)),
        source="shop",
        headers={"traceparent": "00-abc-def-01"},
    )
    text = json.dumps(envelope.to_cloudevent())
    assert json.loads(text)["data"]["order_id"] == "o-1"


def test_headers_are_top_level_extension_attributes() -> None:
    envelope = Envelope(
        type="envelope.test",
        source="shop",
        headers={"traceparent": "00-abc-def-01", "correlationid": "c-1"},
    )
    out = envelope.to_cloudevent()
    assert out["traceparent"] == "00-abc-def-01"
    assert out["correlationid"] == "c-1"
    assert "headers" not in out


def test_to_cloudevent_omits_an_absent_subject() -> None:
    assert "subject" not in Envelope(type="envelope.test", source="s").to_cloudevent()


def test_dataclass_data_becomes_plain_data() -> None:
    @dataclasses.dataclass
    class Line:
        sku: str
        quantity: int

    out = Envelope(type="envelope.line", data=Line("a", 2), source="s").to_cloudevent()
    assert out["data"] == {"sku": "a", "quantity": 2}


# -- from_cloudevent -----------------------------------------------------------------------


def test_round_trip_keeps_every_attribute() -> None:
    at = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    envelope = Envelope(
        type="envelope.order.created",
        data=OrderCreated("o-1", 9.5, at),
        source="shop",
        time=at,
        subject="o-1",
        scope=Scope.APP,
        headers={"traceparent": "00-abc-def-01", "correlationid": "c-1"},
    )
    back = Envelope.from_cloudevent(json.loads(json.dumps(envelope.to_cloudevent())))
    assert back.id == envelope.id
    assert back.source == "shop"
    assert back.type == "envelope.order.created"
    assert back.specversion == "1.0"
    assert back.time == at
    assert back.subject == "o-1"
    assert back.datacontenttype == "application/json"
    assert back.scope is Scope.APP
    assert dict(back.headers) == {"traceparent": "00-abc-def-01", "correlationid": "c-1"}
    # data stays plain data: the system rebuilds registered classes from it
    assert back.data["order_id"] == "o-1"
    assert back.data["amount"] == 9.5


def test_round_trip_of_a_process_scoped_envelope() -> None:
    envelope = Envelope(type="envelope.test", data={"k": [1, 2]}, source="s")
    back = Envelope.from_cloudevent(envelope.to_cloudevent())
    assert back.scope is Scope.PROCESS
    assert back.data == {"k": [1, 2]}
    assert back.subject is None
    assert dict(back.headers) == {}


def test_round_trip_without_data() -> None:
    envelope = Envelope(type="envelope.test", source="s")
    assert Envelope.from_cloudevent(envelope.to_cloudevent()).data is None


def test_unknown_attributes_become_headers() -> None:
    envelope = Envelope.from_cloudevent(cloudevent(traceparent="00-abc-def-01", partitionkey="p"))
    assert dict(envelope.headers) == {"traceparent": "00-abc-def-01", "partitionkey": "p"}


def _outcome(read: Any, event: dict[str, Any]) -> object:
    """What reading `event` gives: the values and their time's zone, or the error."""
    try:
        values = read(event)
    except DecodeError as exc:
        return f"DecodeError: {exc}"
    time = values[4]
    return values, None if time is None else time.tzinfo  # equal times may differ in zone


# The usual shape (what `encode` writes), and values to put in each of its attributes:
# right and wrong types, empty, times in and out of UTC or without a zone.
_USUAL: dict[str, Any] = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "shop",
    "type": "bench.tick",
    "time": "2024-05-01T12:00:00.123456Z",
    "datacontenttype": "application/json",
    "scope": "app",
    "data": {"n": 1},
}
_VALUES: list[Any] = [
    "1.0",
    "0.3",
    "",
    "x",
    "app",
    "process",
    "APP",
    "text/plain",
    "2024-05-01T12:00:00Z",
    "2024-05-01T12:00:00.5+00:00",
    "2024-05-01T14:00:00+02:00",
    "2024-05-01T12:00:00",
    "0001-01-01T00:00:00+01:00",
    "not a time",
    None,
    True,
    0,
    7,
    1.5,
    [],
    {"n": 2},
]


@pytest.mark.parametrize("name", list(_USUAL))
@pytest.mark.parametrize("value", _VALUES, ids=repr)
def test_the_fast_path_reads_the_usual_shape_as_the_full_checks_do(name: str, value: Any) -> None:
    """`from_cloudevent` reads what `encode` usually writes without its full checks.

    With any one attribute changed, it must give what the full checks give: the same
    envelope (its time in the same zone), or the same error.
    """
    event = {**_USUAL, name: value}
    assert _outcome(_cloudevent.read, event) == _outcome(_cloudevent._read_checked, event)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.dictionaries(st.sampled_from(list(_USUAL)), st.sampled_from(_VALUES)))
def test_the_fast_path_agrees_with_several_attributes_changed(changes: dict[str, Any]) -> None:
    event = {**_USUAL, **changes}
    assert _outcome(_cloudevent.read, event) == _outcome(_cloudevent._read_checked, event)


class _EqualToAll:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class _Reads(dict[str, Any]):
    """A dict that reads its "data" differently through `get` than through `[]`."""

    def get(self, key: str, default: Any = None) -> Any:
        return {"other": "data"} if key == "data" else super().get(key, default)


@pytest.mark.parametrize("event", [{**_USUAL, "specversion": _EqualToAll()}, _Reads(_USUAL)])
def test_the_fast_path_leaves_what_only_looks_usual_to_the_full_checks(event: Any) -> None:
    assert _outcome(_cloudevent.read, event) == _outcome(_cloudevent._read_checked, event)


def test_the_fast_path_is_taken_for_what_encode_writes() -> None:
    written = json.loads(encode(Envelope(type="t.x", data={"n": 1}, source="s", scope=Scope.APP)))
    values = _cloudevent._as_written(written)
    assert values is not None
    assert values == _cloudevent._read_checked(written)
    assert values[4] is not None
    assert values[4].tzinfo is UTC


@pytest.mark.parametrize("name", ["specversion", "id", "source", "type"])
def test_missing_required_attribute_is_a_decode_error_naming_it(name: str) -> None:
    with pytest.raises(DecodeError, match=name):
        Envelope.from_cloudevent(cloudevent(**{name: None}))


@pytest.mark.parametrize("name", ["id", "source", "type"])
def test_empty_required_attribute_is_a_decode_error_naming_it(name: str) -> None:
    with pytest.raises(DecodeError, match=name):
        Envelope.from_cloudevent(cloudevent(**{name: ""}))


@pytest.mark.parametrize("name", ["id", "source", "type"])
def test_required_attribute_of_the_wrong_type_is_a_decode_error(name: str) -> None:
    with pytest.raises(DecodeError, match=name):
        Envelope.from_cloudevent(cloudevent(**{name: 42}))


def test_unsupported_specversion_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="specversion"):
        Envelope.from_cloudevent(cloudevent(specversion="0.3"))


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", 1714564800])
def test_bad_time_is_a_decode_error_naming_it(value: object) -> None:
    with pytest.raises(DecodeError, match="time"):
        Envelope.from_cloudevent(cloudevent(time=value))


def test_naive_time_on_the_wire_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="time"):
        Envelope.from_cloudevent(cloudevent(time="2024-05-01T12:00:00"))


def test_subject_of_the_wrong_type_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="subject"):
        Envelope.from_cloudevent(cloudevent(subject=7))


@pytest.mark.parametrize("value", [[], {}, None])
def test_not_an_object_is_a_decode_error(value: object) -> None:
    with pytest.raises(DecodeError):
        Envelope.from_cloudevent(value)  # type: ignore[arg-type]


def test_decode_error_is_an_actorbus_error() -> None:
    with pytest.raises(ActorbusError):
        Envelope.from_cloudevent({})


# -- publish fills in what is missing ------------------------------------------------------


@pytest.mark.anyio
async def test_publish_fills_in_an_empty_source_with_the_system_name() -> None:
    async with ActorSystem("shop") as system:
        envelope = await system.publish(Envelope(type="envelope.test", data={"a": 1}))
    assert envelope.source == "shop"


@pytest.mark.anyio
async def test_publish_keeps_an_explicit_source() -> None:
    async with ActorSystem("shop") as system:
        given = await system.publish(Envelope(type="envelope.test", source="billing"))
        overridden = await system.publish(Envelope(type="envelope.test"), source="crm")
    assert given.source == "billing"
    assert overridden.source == "crm"


@pytest.mark.anyio
async def test_publish_of_an_event_builds_the_envelope() -> None:
    at = dt.datetime.now(UTC)
    async with ActorSystem("shop") as system:
        envelope = await system.publish(
            OrderCreated("o-1", 9.5, at), subject="o-1", headers={"correlationid": "c-1"}
        )
    assert envelope.type == "envelope.order.created"
    assert envelope.source == "shop"
    assert envelope.subject == "o-1"
    assert dict(envelope.headers) == {"correlationid": "c-1"}
    assert envelope.data == OrderCreated("o-1", 9.5, at)
    assert envelope.scope is Scope.PROCESS
    assert envelope.time.utcoffset() == dt.timedelta(0)


@pytest.mark.anyio
async def test_a_published_envelope_is_a_plain_envelope_with_its_publish_time_and_id() -> None:
    # `publish` formats id and time on first read (see `_Stamped`); nothing may show it.
    before = dt.datetime.now(UTC)
    async with ActorSystem("shop") as system:
        first = await system.publish(OrderCreated("o-1", 1.0, before))
        second = await system.publish(OrderCreated("o-2", 2.0, before))
    after = dt.datetime.now(UTC)
    assert type(first) is Envelope
    assert before <= first.time <= second.time <= after
    assert first.time.tzinfo is UTC
    assert first.id != second.id
    assert first.id.rsplit("-", 1)[0] == second.id.rsplit("-", 1)[0]  # one process prefix
    assert int(second.id.rsplit("-", 1)[1], 16) == int(first.id.rsplit("-", 1)[1], 16) + 1
    assert first.id is first.id  # formatted once, then kept
    fields = {field.name: getattr(second, field.name) for field in attrs.fields(Envelope)}
    assert Envelope(**fields) == second
    assert attrs.evolve(second) == second
    assert copy.copy(second) == second
    assert f"id={second.id!r}" in repr(second)
    assert Envelope.from_cloudevent(second.to_cloudevent()).id == second.id


@pytest.mark.anyio
async def test_a_published_envelope_read_for_the_first_time_by_its_repr_or_equality() -> None:
    async with ActorSystem("shop") as system:
        shown = await system.publish(OrderCreated("o-1", 1.0, dt.datetime.now(UTC)))
        compared = await system.publish(OrderCreated("o-1", 1.0, dt.datetime.now(UTC)))
    assert "id=" in repr(shown)  # repr is the first read
    assert shown != compared  # so is equality: the ids differ


@pytest.mark.anyio
async def test_an_unknown_attribute_of_a_published_envelope_is_an_ordinary_attribute_error() -> (
    None
):
    async with ActorSystem("shop") as system:
        envelope = await system.publish(OrderCreated("o-1", 1.0, dt.datetime.now(UTC)))
    with pytest.raises(AttributeError, match="'Envelope' object has no attribute 'idd'") as info:
        envelope.idd  # type: ignore[attr-defined] # noqa: B018
    assert info.value.name == "idd"
    with pytest.raises(AttributeError, match="has no attribute 'idd'"):
        Envelope(type="t").idd  # type: ignore[attr-defined] # noqa: B018


@pytest.mark.anyio
async def test_envelopes_take_weak_references() -> None:
    async with ActorSystem("shop") as system:
        published = await system.publish(OrderCreated("o-1", 1.0, _AT))
    for envelope in (Envelope(type="t"), published):
        assert weakref.ref(envelope)() is envelope


@pytest.mark.anyio
async def test_publish_keeps_the_id_and_time_of_an_envelope() -> None:
    time = dt.datetime(2024, 5, 1, tzinfo=UTC)
    async with ActorSystem("shop") as system:
        envelope = await system.publish(Envelope(type="envelope.test", id="fixed", time=time))
    assert (envelope.id, envelope.time) == ("fixed", time)


def test_binary_data_base64_is_read_as_bytes() -> None:
    """CloudEvents JSON carries binary data in `data_base64`: a context member, not an extension."""
    envelope = Envelope.from_cloudevent(
        cloudevent(data_base64="aGVsbG8=", datacontenttype="application/octet-stream")
    )
    assert "data_base64" not in envelope.headers
    assert envelope.data == b"hello"
    assert envelope.datacontenttype == "application/octet-stream"


# -- bytes data ----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [bytes(range(256)), bytearray(b"\x00\xff")])
def test_bytes_data_is_labelled_binary_unless_a_content_type_is_given(data: bytes) -> None:
    envelope = Envelope(type="com.example.blob", data=data, source="s")
    assert envelope.datacontenttype == "application/octet-stream"
    written = json.loads(envelope.to_json())
    assert written["datacontenttype"] == "application/octet-stream"
    assert "data" not in written
    assert Envelope.from_json(envelope.to_json()).data == bytes(data)

    png = Envelope(type="com.example.blob", data=data, source="s", datacontenttype="image/png")
    assert json.loads(png.to_json())["datacontenttype"] == "image/png"


@pytest.mark.anyio
async def test_published_bytes_are_labelled_binary() -> None:
    async with ActorSystem("shop") as system:
        envelope = await system.publish(b"\x00\x01")
    assert envelope.datacontenttype == "application/octet-stream"
    assert envelope == Envelope(
        **{f.name: getattr(envelope, f.name) for f in attrs.fields(Envelope)}
    )
    assert new_envelope("t.x", {"a": 1}, "s", Scope.APP, None, None).datacontenttype == (
        "application/json"
    )


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ({"data_base64": "aGVsbG8="}, "application/octet-stream"),
        ({"data": "hi"}, "application/json"),
    ],
)
def test_a_missing_content_type_is_binary_for_data_base64_and_json_for_data(
    member: dict[str, str], expected: str
) -> None:
    """The CloudEvents JSON format: no JSON may be assumed of `data_base64`."""
    assert Envelope.from_cloudevent(cloudevent(**member)).datacontenttype == expected


# -- what a CloudEvent must have -----------------------------------------------------------


@pytest.mark.parametrize("write", [Envelope.to_cloudevent, Envelope.to_json, encode])
def test_an_envelope_without_a_source_is_not_written_as_an_invalid_cloudevent(
    write: Any,
) -> None:
    envelope = Envelope(type="envelope.test", data={"a": 1}, id="e-1")
    with pytest.raises(ValueError, match=r"event 'envelope\.test' \(id e-1\).*'source' is empty"):
        write(envelope)


@pytest.mark.parametrize("name", ["id", "type"])
def test_an_empty_id_or_type_is_not_written_either(name: str) -> None:
    envelope = attrs.evolve(Envelope(type="envelope.test", source="s"), **{name: ""})
    for write in (Envelope.to_cloudevent, Envelope.to_json):
        with pytest.raises(ValueError, match=f"'{name}' is empty"):
            write(envelope)


def test_null_optional_attributes_and_extensions_are_absent() -> None:
    """CloudEvents JSON: an OPTIONAL attribute not omitted MAY be written as null."""
    envelope = Envelope.from_cloudevent(
        cloudevent(time=None, data=1) | {"subject": None, "scope": None, "sampled": None}
    )
    assert (envelope.time, envelope.subject, envelope.scope) == (None, None, Scope.APP)
    assert dict(envelope.headers) == {}


# -- to_json / from_json -------------------------------------------------------------------


def test_to_json_is_the_cloudevent_dict_as_compact_json() -> None:
    envelope = Envelope(
        type="envelope.order.created",
        data=OrderCreated("o-1", 9.5, _AT),
        source="shop",
        subject="o-1",
        headers={"traceparent": "00-abc-def-01"},
    )
    written = envelope.to_json()
    assert isinstance(written, bytes)
    assert written == json.dumps(envelope.to_cloudevent(), separators=(",", ":")).encode()
    assert written.isascii()


@pytest.mark.parametrize("convert", [bytes, bytes.decode, bytearray, memoryview])
def test_from_json_reads_bytes_or_text(convert: Any) -> None:
    envelope = Envelope(type="envelope.test", data={"é": [1, 2]}, source="s", scope=Scope.APP)
    assert Envelope.from_json(convert(envelope.to_json())) == envelope


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"\xff", "not UTF-8"),
        (b"[]", "must be a JSON object"),
        (b'{"specversion":"1.0","id":"e","type":"t"}', "'source' must be a non-empty string"),
        (b'{"specversion":"1.0","id":"e","source":"s","type":"t","data":NaN}', "NaN"),
        (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
    ],
)
def test_from_json_refuses_what_is_not_a_cloudevent_saying_why(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        Envelope.from_json(raw)


def test_from_json_has_a_size_limit() -> None:
    raw = Envelope(type="envelope.test", data="x" * 200, source="s").to_json()
    assert Envelope.from_json(raw, max_bytes=len(raw)).data == "x" * 200
    with pytest.raises(DecodeError, match=f"exceeds max_message_bytes={len(raw) - 1}"):
        Envelope.from_json(raw, max_bytes=len(raw) - 1)


@pytest.mark.anyio
async def test_wire_round_trip_rebuilds_timezone_aware_datetimes_in_the_data() -> None:
    @attrs.frozen
    class Stamp:  # not registered: rebuilt through the handler's annotation
        label: str
        at: dt.datetime

    seen: list[Stamp] = []

    class Stamps(Actor):
        @handle("envelope.stamp")
        async def stamp(self, stamp: Stamp) -> None:
            seen.append(stamp)

    at = dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    wire = json.dumps(
        Envelope(type="envelope.stamp", data=Stamp("a", at), source="s").to_cloudevent()
    )
    async with ActorSystem("envelope") as system:
        await system.spawn(Stamps)
        await system.publish(Envelope.from_cloudevent(json.loads(wire)), scope=Scope.PROCESS)
        await system.drain()
    [stamp] = seen
    assert stamp == Stamp("a", at)
    assert stamp.at.tzinfo is not None


# -- the wire writer ----------------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _dumped(envelope: Envelope) -> bytes:
    """What `encode` wrote before it had its own writer: the reference it must equal."""
    return json.dumps(envelope.to_cloudevent(), separators=(",", ":"), allow_nan=False).encode()


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    source=_text.filter(bool),
    id_=_text.filter(bool),
    subject=st.none() | _text,
    headers=st.dictionaries(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), _text, max_size=3),
    data=_json_values | st.binary(max_size=8),
    micros=st.integers(0, 999_999),
)
def test_encode_writes_exactly_what_json_dumps_writes_for_the_cloudevent_dict(
    source: str,
    id_: str,
    subject: str | None,
    headers: dict[str, str],
    data: object,
    micros: int,
) -> None:
    headers = {key: value for key, value in headers.items() if key not in {"id", "time", "data"}}
    hypothesis.assume(all(key not in {"type", "source", "subject", "scope"} for key in headers))
    time = dt.datetime(2024, 5, 1, 12, 30, 5, micros, tzinfo=UTC)
    envelope = Envelope(
        type="envelope.wire",
        data=data,
        source=source,
        id=id_,
        time=time,
        subject=subject,
        headers=headers,
        scope=Scope.APP,
    )
    assert encode(envelope) == _dumped(envelope)


@pytest.mark.anyio
async def test_encode_of_published_envelopes_matches_their_id_and_time() -> None:
    """Published envelopes are written from their stamp: the same text as the attributes."""
    async with ActorSystem("shop") as system:
        published = [await system.publish(OrderCreated("o-1", 1.5, _AT)) for _ in range(50)]
    for envelope in published:
        written = encode(envelope)  # before anything read `id` or `time`
        assert written == _dumped(envelope)
        back = decode(written)
        assert (back.id, back.time) == (envelope.id, envelope.time)


def test_a_stamp_on_a_whole_second_is_written_without_a_fraction() -> None:
    draft: Any = new_envelope("envelope.wire", None, "s", Scope.APP, None, None)
    vars(draft).update(_counter=7, _nanoseconds=1_714_564_800_000_000_000)
    assert b'"time":"2024-05-01T12:00:00Z"' in encode(draft)
    assert draft.time == dt.datetime(2024, 5, 1, 12, tzinfo=UTC)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"x": float("nan")}, "Out of range float"),
        ({"x": object()}, "not JSON serializable"),
        (_nested(5000), "nested too deeply"),
    ],
)
def test_data_that_is_not_json_is_a_type_error_naming_the_event(data: object, reason: str) -> None:
    envelope = Envelope(type="envelope.wire", data=data, source="s", id="e-1")
    with pytest.raises(TypeError, match=rf"event 'envelope\.wire' \(id e-1\).*{reason}"):
        encode(envelope)


def test_data_that_contains_itself_is_a_type_error() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(TypeError, match="nested too deeply, or contains itself"):
        encode(Envelope(type="envelope.wire", data=loop, source="s", id="e-1"))
    # The writer is not left in a bad state by the failure.
    written = encode(Envelope(type="envelope.wire", data={"ok": 1}, source="s", id="e-2"))
    assert written.endswith(b'{"ok":1}}')


@pytest.mark.parametrize(
    ("subject", "headers"), [(None, None), ("o-1", {"correlationid": "c-1"}), (None, {})]
)
def test_new_envelope_equals_the_keyword_constructor(
    subject: str | None, headers: dict[str, str] | None
) -> None:
    """`publish`'s envelopes leave out what they can: the values must be the defaults."""
    for data in ({"a": 1}, b"\x00", None):
        made = new_envelope("envelope.wire", data, "s", Scope.APP, subject, headers)
        built = Envelope(
            type="envelope.wire",
            data=data,
            source="s",
            scope=Scope.APP,
            subject=subject,
            headers=headers,
            id=made.id,
            time=made.time,
        )
        assert made == built
        assert made.to_json() == built.to_json()


def test_with_data_keeps_the_content_type_of_a_published_envelope() -> None:
    published = new_envelope("envelope.wire", b"\x00", "s", Scope.APP, None, None)
    assert with_data(published, {"a": 1}) == attrs.evolve(published, data={"a": 1})
    assert with_data(published, {"a": 1}).datacontenttype == "application/octet-stream"


def test_with_data_equals_evolve() -> None:
    envelope = Envelope(
        type="envelope.wire", data={"a": 1}, source="s", subject="x", headers={"k": "v"}
    )
    copy = with_data(envelope, {"b": 2})
    assert copy == attrs.evolve(envelope, data={"b": 2})
    assert type(copy) is Envelope


@pytest.mark.parametrize("name", ["source", "subject", "id"])
def test_a_context_attribute_that_is_not_a_string_is_refused_at_encode(name: str) -> None:
    """It would be written as a JSON number, which no instance could decode."""
    envelope = attrs.evolve(Envelope(type="envelope.wire", source="s", id="e-1"), **{name: 7})
    with pytest.raises(TypeError, match=rf"attribute '{name}' must be a string, got int"):
        encode(envelope)


def test_boolean_and_integer_extension_attributes_become_their_cloudevents_strings() -> None:
    envelope = Envelope.from_cloudevent(cloudevent(sampled=True, retried=False, attempt=3))
    assert dict(envelope.headers) == {"sampled": "true", "retried": "false", "attempt": "3"}
