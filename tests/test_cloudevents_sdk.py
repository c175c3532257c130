"""The official CloudEvents Python SDK as an oracle: it reads what actorbus writes, and back.

Both APIs of `cloudevents` 2.x are used: the strict `cloudevents.core` (it validates every
attribute when it builds an event) and the older `cloudevents.v1` (what 1.x offered as
`cloudevents.http`).
"""

import datetime as dt
import json
from typing import Any

import attrs
import pytest
from cloudevents.core.bindings import http as core_http
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent as CoreEvent
from cloudevents.v1 import conversion as v1_conversion
from cloudevents.v1 import http as v1_http

from actorbus import Actor, ActorSystem, DecodeError, Envelope, Scope, event, handle

UTC = dt.UTC
_AT = dt.datetime(2024, 5, 1, 12, 30, 15, 250_000, tzinfo=UTC)
_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@event("sdk.order.placed", scope=Scope.APP)
class OrderPlaced:
    order_id: str
    amount: float
    lines: list[str]


def _full() -> Envelope:
    """An envelope with every attribute actorbus writes."""
    return Envelope(
        type="sdk.order.placed",
        data=OrderPlaced("o-1", 9.5, ["book", "lamp"]),
        source="shop",
        id="e-1",
        time=_AT,
        subject="o-1",
        scope=Scope.APP,
        headers={"traceparent": _TRACEPARENT, "partitionkey": "o-1"},
    )


def _read_core(raw: bytes) -> Any:
    """The strict reader: `cloudevents.core`'s JSON format and v1.0 event class."""
    return core_http.from_http_event(
        core_http.HTTPMessage({"content-type": "application/cloudevents+json"}, raw)
    )


# -- actorbus writes, the SDK reads ---------------------------------------------------------


def test_the_strict_sdk_reads_every_attribute_and_extension() -> None:
    got = _read_core(_full().to_json())
    assert (got.get_specversion(), got.get_id(), got.get_source(), got.get_type()) == (
        "1.0",
        "e-1",
        "shop",
        "sdk.order.placed",
    )
    assert got.get_time() == _AT
    assert got.get_subject() == "o-1"
    assert got.get_datacontenttype() == "application/json"
    assert got.get_extension("traceparent") == _TRACEPARENT
    assert got.get_extension("partitionkey") == "o-1"
    assert got.get_extension("scope") == "app"
    assert got.get_data() == {"order_id": "o-1", "amount": 9.5, "lines": ["book", "lamp"]}


def test_the_v1_sdk_reads_every_attribute_and_extension() -> None:
    got = v1_http.from_json(_full().to_json())
    assert got["id"] == "e-1"
    assert got["source"] == "shop"
    assert got["type"] == "sdk.order.placed"
    assert got["subject"] == "o-1"
    assert dt.datetime.fromisoformat(got["time"]) == _AT
    assert got["traceparent"] == _TRACEPARENT
    assert got["scope"] == "app"
    assert got.get_data() == {"order_id": "o-1", "amount": 9.5, "lines": ["book", "lamp"]}


@pytest.mark.parametrize("read", [_read_core, v1_http.from_json], ids=["core", "v1"])
def test_bytes_reach_the_sdk_as_bytes(read: Any) -> None:
    blob = bytes(range(256))
    got = read(Envelope(type="com.example.blob", data=blob, source="s").to_json())
    assert got.get_data() == blob


def test_bytes_are_sent_in_http_binary_mode_with_a_binary_content_type() -> None:
    """Issue 21 item 1: bytes used to be labelled JSON, and sent as such."""
    blob = bytes(range(256))
    got = _read_core(Envelope(type="com.example.blob", data=blob, source="s").to_json())
    message = core_http.to_binary_event(got)
    assert message.headers["content-type"] == "application/octet-stream"
    assert message.body == blob


def test_a_given_content_type_of_bytes_reaches_http_binary_mode() -> None:
    png = Envelope(
        type="com.example.image", data=b"\x89PNG", source="s", datacontenttype="image/png"
    )
    message = core_http.to_binary_event(_read_core(png.to_json()))
    assert message.headers["content-type"] == "image/png"


@pytest.mark.parametrize("read", [_read_core, v1_http.from_json], ids=["core", "v1"])
def test_the_sdk_reads_an_envelope_without_optional_attributes(read: Any) -> None:
    bare = Envelope(type="sdk.bare", source="s", time=None)
    written = json.loads(bare.to_json())
    assert written.keys() == {"specversion", "id", "source", "type", "datacontenttype", "scope"}
    got = read(bare.to_json())
    assert got.get_data() is None


def test_an_envelope_without_a_source_is_not_written_for_the_strict_sdk_to_refuse() -> None:
    """Issue 21 item 2: it used to be written with ``"source": ""``."""
    with pytest.raises(CloudEventValidationError, match="source"):
        _read_core(
            json.dumps({"specversion": "1.0", "id": "e", "source": "", "type": "t"}).encode()
        )
    with pytest.raises(ValueError, match="'source' is empty"):
        Envelope(type="t", data={"n": 1}).to_json()


# -- the SDK writes, actorbus reads ---------------------------------------------------------


def test_actorbus_reads_what_the_strict_sdk_writes() -> None:
    sent = CoreEvent(
        {
            "type": "sdk.order.placed",
            "source": "https://example.com/shop",
            "id": "c-1",
            "time": _AT,
            "subject": "o-1",
            "traceparent": _TRACEPARENT,
            "attempt": 3,
            "sampled": True,
        },
        {"order_id": "o-1", "amount": 9.5, "lines": ["book"]},
    )
    envelope = Envelope.from_json(core_http.to_structured_event(sent).body)
    assert (envelope.id, envelope.source, envelope.type) == (
        "c-1",
        "https://example.com/shop",
        "sdk.order.placed",
    )
    assert envelope.time == _AT
    assert envelope.subject == "o-1"
    assert envelope.datacontenttype == "application/json"
    assert envelope.scope is Scope.APP  # no scope extension: it came from outside
    assert dict(envelope.headers) == {
        "traceparent": _TRACEPARENT,
        "attempt": "3",  # extension integers and booleans in their CloudEvents string form
        "sampled": "true",
    }
    assert envelope.data == {"order_id": "o-1", "amount": 9.5, "lines": ["book"]}


def test_actorbus_reads_what_the_v1_sdk_writes() -> None:
    sent = v1_http.CloudEvent(
        {"type": "sdk.order.placed", "source": "/shop", "traceparent": _TRACEPARENT},
        {"order_id": "o-2", "amount": 1.5, "lines": []},
    )
    envelope = Envelope.from_json(v1_conversion.to_json(sent))
    assert (envelope.id, envelope.source) == (sent["id"], "/shop")
    assert envelope.time == dt.datetime.fromisoformat(sent["time"])
    assert envelope.headers["traceparent"] == _TRACEPARENT
    assert envelope.data == {"order_id": "o-2", "amount": 1.5, "lines": []}


def test_actorbus_reads_sdk_bytes_as_bytes_and_assumes_no_json() -> None:
    blob = bytes(range(256))
    sent = CoreEvent({"type": "com.example.blob", "source": "/s"}, blob)
    written = core_http.to_structured_event(sent).body
    assert "data_base64" in json.loads(written)
    envelope = Envelope.from_json(written)
    assert envelope.data == blob
    assert envelope.datacontenttype == "application/octet-stream"

    v1_sent = v1_http.CloudEvent({"type": "com.example.blob", "source": "/s"}, blob)
    assert Envelope.from_json(v1_conversion.to_json(v1_sent)).data == blob


def test_an_absent_time_stays_absent() -> None:
    """Issue 21 item 3: a missing time used to be the moment of reading."""
    sent = v1_http.CloudEvent({"type": "sdk.bare", "source": "/s"}, {"n": 1})
    del sent["time"]  # the SDK adds one unless told otherwise
    written = v1_conversion.to_json(sent)
    assert "time" not in json.loads(written)
    envelope = Envelope.from_json(written)
    assert envelope.time is None
    assert envelope.subject is None
    assert Envelope.from_json(written) == envelope
    assert "time" not in json.loads(envelope.to_json())


def test_uppercase_extension_names_are_refused_not_lowercased() -> None:
    """The v1 SDK lowercases attribute names silently; the CloudEvents spec forbids them."""
    raw = {"specversion": "1.0", "id": "e", "source": "/s", "type": "t", "traceParent": "x"}
    with pytest.raises(DecodeError, match="'traceParent'"):
        Envelope.from_json(json.dumps(raw))
    with pytest.raises(CloudEventValidationError, match="traceParent"):
        CoreEvent({"type": "t", "source": "/s", "traceParent": "x"})
    lowered = v1_http.CloudEvent({"type": "t", "source": "/s", "traceParent": "x"}, None)
    assert Envelope.from_json(v1_conversion.to_json(lowered)).headers["traceparent"] == "x"


# -- both ways -----------------------------------------------------------------------------


def test_a_round_trip_through_the_strict_sdk_keeps_the_envelope() -> None:
    envelope = _full()
    back = Envelope.from_json(core_http.to_structured_event(_read_core(envelope.to_json())).body)
    assert back == attrs.evolve(envelope, data=json.loads(envelope.to_json())["data"])


def test_a_round_trip_through_the_v1_sdk_keeps_the_envelope() -> None:
    envelope = _full()
    back = Envelope.from_json(v1_conversion.to_json(v1_http.from_json(envelope.to_json())))
    assert back == attrs.evolve(envelope, data=json.loads(envelope.to_json())["data"])


@pytest.mark.anyio
async def test_an_sdk_event_reaches_a_handler_as_its_registered_class() -> None:
    seen: list[tuple[OrderPlaced, Envelope]] = []

    class Orders(Actor):
        @handle()
        async def placed(self, order: OrderPlaced, envelope: Envelope) -> None:
            seen.append((order, envelope))

    sent = CoreEvent(
        {"type": "sdk.order.placed", "source": "/crm", "traceparent": _TRACEPARENT},
        {"order_id": "o-3", "amount": 2.0, "lines": ["pen"]},
    )
    async with ActorSystem("shop") as system:
        await system.spawn(Orders)
        received = Envelope.from_json(core_http.to_structured_event(sent).body)
        await system.publish(received, scope=Scope.PROCESS)
        await system.drain()
    [(order, envelope)] = seen
    assert order == OrderPlaced("o-3", 2.0, ["pen"])
    assert (envelope.id, envelope.source) == (sent.get_id(), "/crm")
