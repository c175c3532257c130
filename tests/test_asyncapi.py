"""`actorbus.asyncapi` and `actorbus asyncapi`: AsyncAPI 3.0 documents of applications.

The official parser (`@asyncapi/parser`, run by Node.js: see asyncapi_support.py) judges
every document; ajv checks that the schemas accept what actorbus really writes and refuse
what it cannot read; js-yaml reads the YAML back.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import hypothesis
import pytest
from asyncapi_support import ensure_packages, install_command
from hypothesis import strategies as st

import actorbus
from actorbus import Actor, ActorSystem, DecodeError, Router, asyncapi
from actorbus._convert import structure, unstructure
from actorbus._wire import encode
from actorbus._yaml import to_yaml
from actorbus.redis import RedisTransport
from actorbus.redis._config import Keys
from actorbus.testing import MemoryTransport, reset_event_registry

TESTS = Path(__file__).resolve().parent
EXAMPLES = TESTS.parent / "examples"
APP = TESTS / "asyncapi_app.py"
SYSTEMS = [
    "redis_system",
    "local_system",
    "memory_system",
    "tls_system",
    "partitioned_system",
    "local_entities_system",
]
# What the parser may say about any document here: AsyncAPI 3.1 exists (the brief asks
# for 3.0, which every tool reads).
ACCEPTED = {"asyncapi-latest-version"}


def load_module(path: Path, name: str) -> dict[str, Any]:
    """Run `path` afresh as module `name`, as the only registrant of @event types; its
    namespace.

    A document lists every type registered in the process: the registry is reset first
    (conftest.py restores it after the test), so that the types other test modules
    registered when imported are not in it. A real module, unlike `runpy.run_path`'s, so
    that annotations resolve in it.
    """
    reset_event_registry()
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return vars(module)


def load_app() -> dict[str, Any]:
    """The test application."""
    return load_module(APP, "asyncapi_app")


def document_of(factory: str, **options: Any) -> dict[str, Any]:
    """The document of one of the test application's systems (built, never started)."""
    system = load_app()[factory]()
    try:
        return asyncapi(system, **options)
    finally:
        if isinstance(system.transport, MemoryTransport):
            anyio.run(system.transport.close)  # its streams exist from the start


def assert_valid(oracle: Any, document: dict[str, Any]) -> None:
    found = oracle.diagnostics(json.dumps(document))
    reported = [d for d in found if d["code"] not in ACCEPTED]
    assert reported == [], json.dumps(reported, indent=2)


def ref(document: dict[str, Any], pointer: dict[str, str] | str) -> dict[str, Any]:
    """Follow a local `$ref` (a reference object or its text)."""
    target = pointer if isinstance(pointer, str) else pointer["$ref"]
    node: Any = document
    for part in target.removeprefix("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


def message_keys(document: dict[str, Any], operation: str) -> set[str]:
    return {m["$ref"].rpartition("/")[2] for m in document["operations"][operation]["messages"]}


# -- validity ------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", SYSTEMS)
def test_every_feature_gives_a_valid_document(asyncapi_oracle: Any, factory: str) -> None:
    document = document_of(factory)
    assert document["asyncapi"] == "3.0.0"
    assert_valid(asyncapi_oracle, document)


def example_system(path: Path) -> ActorSystem:
    """The example's system: its factory, else one with all its actors and routers.

    Most examples build their system inside `main()` and spawn their actors there; the
    document of such a program is that of a system declaring the same actors and routers.
    """
    namespace = load_module(path, f"example_{path.stem}")
    for name in ("make_system", "build_system", "system"):
        found = namespace.get(name)
        if isinstance(found, ActorSystem):
            return found
        if callable(found):
            built = found()
            assert isinstance(built, ActorSystem)
            return built
    actors = [
        value
        for value in namespace.values()
        if isinstance(value, type) and issubclass(value, Actor) and value is not Actor
    ]
    routers = [value for value in namespace.values() if isinstance(value, Router)]
    return ActorSystem(path.stem, actors=actors, routers=routers)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
def test_every_example_gives_a_valid_document(asyncapi_oracle: Any, path: Path) -> None:
    document = asyncapi(example_system(path))
    assert document["operations"], "the example declares handlers"
    assert_valid(asyncapi_oracle, document)


def test_the_parser_refuses_a_broken_document(asyncapi_oracle: Any) -> None:
    """The oracle can fail: an operation whose message is not in its channel."""
    document = document_of("redis_system")
    operation = document["operations"]["Inventory.reserve"]
    operation["messages"] = [{"$ref": "#/channels/deadLetters/messages/actorbus.deadLetter"}]
    codes = {d["code"] for d in asyncapi_oracle.diagnostics(json.dumps(document))}
    assert "asyncapi3-operation-messages-from-referred-channel" in codes


# -- what the document says ----------------------------------------------------------------


def test_a_redis_application_has_its_streams_and_no_secret() -> None:
    document = document_of("redis_system", version="2.1.0")
    keys = Keys("actorbus", "shop")
    assert document["info"]["title"] == "shop"
    assert document["info"]["version"] == "2.1.0"
    assert document["servers"]["redis"]["host"] == "127.0.0.1:1"
    assert document["servers"]["redis"]["x-actorbus-database"] == 3
    assert document["servers"]["redis"]["security"] == [
        {"$ref": "#/components/securitySchemes/redisAuth"}
    ]
    channels = document["channels"]
    assert channels["events"]["address"] == keys.events
    assert channels["deadLetters"]["address"] == keys.dead
    assert channels["replies"]["address"] == keys.replies("{instance}")
    assert set(channels["replies"]["parameters"]) == {"instance"}
    assert document["operations"]["actorbus.deadLetters"]["action"] == "send"
    text = json.dumps(document)
    assert "s3cret" not in text
    assert "shop-worker" not in text


def test_a_process_only_application_says_so() -> None:
    document = document_of("local_system")
    assert "servers" not in document
    assert "PROCESS-only" in document["info"]["description"]
    assert document["info"]["x-actorbus-transport"] is None
    assert document["channels"]["events"]["address"] is None
    assert "deadLetters" not in document["channels"]
    assert "replies" not in document["channels"]
    # A reply is handed over in the process: no reply channel.
    reply = document["operations"]["Inventory.stock"]["reply"]
    assert set(reply) == {"messages"}
    assert ref(document, reply["messages"][0])["payload"] == {"$ref": "#/components/schemas/Stock"}


def test_another_transport_keeps_its_addresses_open() -> None:
    document = document_of("memory_system")
    assert "servers" not in document
    assert document["info"]["x-actorbus-transport"] == "actorbus.testing.MemoryTransport"
    assert document["channels"]["events"]["address"] is None


def test_tls_and_prefix() -> None:
    document = document_of("tls_system")
    server = document["servers"]["redis"]
    assert server["x-actorbus-tls"] is True
    assert server["host"] == "redis.internal:6380"
    assert "security" not in server
    assert document["channels"]["events"]["address"] == "blue:app:shop:events"


def test_partition_streams_are_one_channel_with_their_hash_tags() -> None:
    document = document_of("partitioned_system")
    events = document["channels"]["events"]
    assert events["x-actorbus-partitions"] == 4
    assert "4 partition streams" in events["description"]
    # One parameter: each partition's hash tag with its braces, in partition order.
    assert events["address"] == "actorbus:app:shop:{partition}:events"
    tags = events["parameters"]["partition"]["enum"]
    keys = Keys("actorbus", "shop", 4)
    streams = [events["address"].replace("{partition}", tag) for tag in tags]
    assert streams == [keys.stream(p) for p in range(4)]
    assert len(set(streams)) == 4
    # The partitions' leases, fences, states and member sets are not channels.
    addresses = [c["address"] or "" for c in document["channels"].values()]
    for kind in ("lease", "epoch", "state", "members", "meta"):
        assert not any(f":{kind}" in address for address in addresses), kind
    assert set(document["channels"]) == {"events", "process", "deadLetters", "replies"}
    # A group's operation says that a key's events are handled in order.
    reserve = document["operations"]["Inventory.reserve"]
    assert "Each of the 4 partitions is handled by one live member" in reserve["description"]
    assert reserve["x-actorbus-consumer-group"] == "g:inventory"


def test_one_partition_keeps_one_stream() -> None:
    events = document_of("redis_system")["channels"]["events"]
    assert events["address"] == Keys("actorbus", "shop").events
    assert "parameters" not in events
    assert "x-actorbus-partitions" not in events


def test_an_entity_kind_is_its_group() -> None:
    document = document_of("partitioned_system")
    add = document["operations"]["Cart.add"]
    assert add["channel"] == {"$ref": "#/channels/events"}
    assert add["x-actorbus-actor"] == "Cart"
    assert add["x-actorbus-delivery"] == "group"
    assert add["x-actorbus-group"] == "entity:Cart"
    assert add["x-actorbus-consumer-group"] == "g:entity:Cart"
    assert add["tags"] == [{"name": "group:entity:Cart"}]
    assert add["x-actorbus-entity"] == {
        "kind": "Cart",
        "class": "asyncapi_app.Cart",
        "state": {"$ref": "#/components/schemas/CartState"},
        "passivateAfter": 600.0,
    }
    assert "entity of its key (`partitionkey`)" in add["description"]
    assert "`togroup`" in add["description"]
    assert "exactly once" in add["description"]
    assert message_keys(document, "Cart.add") == {"cart.item_added"}
    # An entity's `ask` is answered over the reply streams, as a request is.
    reply = document["operations"]["Cart.contents"]["reply"]
    assert reply["channel"] == {"$ref": "#/channels/replies"}
    state = document["components"]["schemas"]["CartState"]
    assert state["properties"]["skus"] == {"type": "array", "items": {"type": "string"}}


def test_an_entity_kind_without_transport_lives_in_the_process() -> None:
    add = document_of("local_entities_system")["operations"]["Cart.add"]
    assert add["x-actorbus-group"] == "entity:Cart"
    assert "x-actorbus-consumer-group" not in add
    assert "One live entity per key, in the process" in add["description"]
    assert "in memory" in add["description"]


def test_each_event_type_is_a_message_on_the_channel_of_its_scope() -> None:
    document = document_of("redis_system")
    events = set(document["channels"]["events"]["messages"])
    process = set(document["channels"]["process"]["messages"])
    assert {"shop.order.placed", "shop.stock.query", "shop.payment.settled"} <= events
    assert {"shop.clock.tick", "shop.odd.shapes", "LocalNote"} <= process
    assert "actorbus.dead_letter" in process  # actorbus's own records only when handled
    assert "actorbus.system.started" not in process | events
    # An ad-hoc type's scope is the publisher's choice: both channels.
    assert "payment.processed" in events & process
    placed = document["components"]["messages"]["shop.order.placed"]
    assert placed["title"] == "OrderPlaced"
    assert placed["summary"] == "An order was placed."
    assert placed["x-actorbus-scope"] == "app"
    assert placed["payload"] == {"$ref": "#/components/schemas/OrderPlaced"}
    headers = placed["headers"]["allOf"]
    assert headers[0] == {"$ref": "#/components/schemas/actorbus.CloudEvent"}
    assert headers[1]["properties"]["type"] == {"const": "shop.order.placed"}
    adhoc = document["components"]["messages"]["payment.processed"]
    assert adhoc["payload"] == {"$ref": "#/components/schemas/actorbus.AdHocArguments"}


def test_each_handler_is_an_operation_with_its_delivery() -> None:
    document = document_of("redis_system")
    operations = document["operations"]
    reserve = operations["Inventory.reserve"]
    assert reserve["action"] == "receive"
    assert reserve["channel"] == {"$ref": "#/channels/events"}
    assert reserve["x-actorbus-actor"] == "Inventory"
    assert reserve["x-actorbus-delivery"] == "group"
    assert reserve["x-actorbus-group"] == "inventory"  # the actor's group
    assert reserve["x-actorbus-consumer-group"] == "g:inventory"
    assert reserve["tags"] == [{"name": "group:inventory"}]
    assert reserve["summary"] == "Reserve the stock of an order."
    assert message_keys(document, "Inventory.reserve") == {"shop.order.placed"}
    settle = operations["Inventory.settle.events"]
    assert settle["x-actorbus-group"] == "ledger"  # the handler's own group
    assert settle["x-actorbus-subscriptions"] == ["shop.payment.*"]
    assert message_keys(document, "Inventory.settle.events") == {
        "shop.payment.settled",
        "actorbus.unregistered",
    }
    mail = operations["mail_receipt"]
    assert mail["x-actorbus-delivery"] == "group"
    assert mail["x-actorbus-consumer-group"] == "g:mailers"


def test_a_glob_receives_on_both_channels_as_a_broadcast() -> None:
    document = document_of("redis_system")
    app = document["operations"]["Audit.everything.events"]
    local = document["operations"]["Audit.everything.process"]
    assert app["x-actorbus-delivery"] == local["x-actorbus-delivery"] == "broadcast"
    assert app["x-actorbus-consumer-group"] == "b:{instance}"
    assert "x-actorbus-consumer-group" not in local
    assert message_keys(document, "Audit.everything.events") == {
        "shop.order.placed",
        "shop.stock.query",
        "shop.payment.settled",
        "actorbus.unregistered",
    }
    assert message_keys(document, "Audit.everything.process") == {
        "shop.clock.tick",
        "shop.odd.shapes",
        "actorbus.unregistered",
    }


def test_a_handler_that_returns_a_value_replies() -> None:
    document = document_of("redis_system")
    operations = document["operations"]
    reply = operations["Inventory.stock"]["reply"]
    assert reply["channel"] == {"$ref": "#/channels/replies"}
    assert reply["address"]["location"] == "$message.header#/replyto"
    message = ref(document, ref(document, reply["messages"][0]))
    value = message["payload"]["properties"]["value"]["x-actorbus-value"]
    assert value == {"$ref": "#/components/schemas/Stock"}
    assert "reply" not in operations["Inventory.reserve"]  # -> None: no reply
    assert "reply" not in operations["Audit.everything.events"]  # not annotated
    # A PROCESS event's reply stays in the process.
    assert set(operations["Audit.count"]["reply"]) == {"messages"}
    query = document["components"]["messages"]["shop.stock.query"]
    assert query["correlationId"]["location"] == "$message.header#/id"
    assert "correlationId" not in document["components"]["messages"]["shop.order.placed"]


def test_data_schemas_follow_the_fields() -> None:
    document = document_of("redis_system")
    schemas = document["components"]["schemas"]
    order = schemas["OrderPlaced"]
    assert order["required"] == ["order_id", "lines", "total"]
    properties = order["properties"]
    assert properties["order_id"] == {"type": "string", "description": "The order's id."}
    assert properties["lines"]["items"] == {"$ref": "#/components/schemas/Line"}
    assert properties["total"] == {"type": "number"}
    assert properties["status"] == {
        "allOf": [{"$ref": "#/components/schemas/Status"}],
        "default": "new",
    }
    assert properties["note"] == {"type": ["string", "null"], "default": None}
    assert properties["placed_at"]["type"] == ["string", "null"]
    assert properties["placed_at"]["format"] == "date-time"
    assert properties["tags"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert properties["category"] == {
        "anyOf": [{"$ref": "#/components/schemas/Category"}, {"type": "null"}],
        "default": None,
    }
    assert properties["channel"] == {"enum": ["web", "shop"], "default": "web"}
    assert properties["codes"]["items"] == [{"type": "integer"}, {"type": "string"}]
    assert "checksum" not in properties  # init=False: the converter skips it
    assert schemas["Status"]["enum"] == ["new", "paid"]
    assert schemas["Status"]["description"] == "Where an order is."
    assert schemas["Priority"] == {
        "title": "Priority",
        "type": "integer",
        "enum": [1, 2],
        "x-actorbus-class": schemas["Priority"]["x-actorbus-class"],
    }
    assert schemas["Line"]["properties"]["quantity"] == {
        "type": "integer",
        "default": 1,
        "description": "How many.",
    }
    assert "Attributes" not in schemas["Line"]["description"]
    category = schemas["Category"]["properties"]["children"]
    assert category["items"] == {"$ref": "#/components/schemas/Category"}  # recursive
    stock = schemas["GetStock"]  # a dataclass
    assert stock["required"] == ["sku"]
    assert stock["properties"]["warehouses"] == {"type": "array", "items": {"type": "string"}}


def test_what_has_no_exact_schema_is_said() -> None:
    document = document_of("redis_system")
    odd = document["components"]["schemas"]["OddShapes"]["properties"]
    for name in ("labels", "blob", "day", "either"):
        assert "x-actorbus-unsupported" in odd[name], name
        assert odd[name]["description"].startswith("Not described exactly")
    assert odd["labels"]["uniqueItems"] is True  # what is known is still said
    plain = document["components"]["messages"]["LocalNote"]["payload"]
    assert "x-actorbus-unsupported" in plain


def test_actors_spawned_later_are_not_invented() -> None:
    document = asyncapi(ActorSystem("empty"))
    assert document["operations"] == {}
    assert "spawned while the system runs are not listed" in document["info"]["description"]


def test_asyncapi_takes_a_system() -> None:
    with pytest.raises(TypeError, match="describes an ActorSystem"):
        asyncapi("shop")  # type: ignore[arg-type]
    assert "asyncapi" in actorbus.__all__


# -- schemas against real data (ajv) -------------------------------------------------------


def test_schemas_accept_what_actorbus_writes(asyncapi_oracle: Any) -> None:
    app = load_app()
    document = asyncapi(app["redis_system"]())
    full = app["OrderPlaced"](
        "o-1",
        [app["Line"]("book", 2)],
        9.5,
        status=app["Status"].PAID,
        priority=app["Priority"].HIGH,
        note="gift",
        placed_at=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
        tags={"a": 1},
        category=app["Category"]("books", [app["Category"]("novels")]),
        channel="shop",
        codes=(3, "x"),
    )
    samples = [
        ("shop.order.placed", full),
        ("shop.order.placed", app["OrderPlaced"]("o-2", [], 0)),
        ("shop.stock.query", app["GetStock"]("book", ["north"])),
        ("shop.clock.tick", app["Tick"](3)),
    ]
    for key, sample in samples:
        data = json.loads(json.dumps(unstructure(sample)))
        pointer = f"#/components/messages/{key}/payload"
        assert asyncapi_oracle.validate(document, pointer, data) == [], (key, data)


@pytest.mark.parametrize(
    "data",
    [
        {"lines": [], "total": 1.0},  # no order_id
        {"order_id": 1, "lines": [], "total": 1.0},
        {"order_id": "o", "lines": [{"quantity": 1}], "total": 1.0},  # a line without sku
        {"order_id": "o", "lines": [], "total": "1"},
        {"order_id": "o", "lines": [], "total": 1.0, "status": "lost"},
        {"order_id": "o", "lines": [], "total": 1.0, "tags": {"a": "b"}},
        {"order_id": "o", "lines": [], "total": 1.0, "category": {"children": []}},
        {"order_id": "o", "lines": [], "total": 1.0, "channel": "phone"},
        {"order_id": "o", "lines": [], "total": 1.0, "codes": [1]},
    ],
)
def test_schemas_refuse_what_actorbus_cannot_read(
    asyncapi_oracle: Any, data: dict[str, Any]
) -> None:
    app = load_app()
    document = asyncapi(app["redis_system"]())
    pointer = "#/components/messages/shop.order.placed/payload"
    assert asyncapi_oracle.validate(document, pointer, data) != []
    with pytest.raises(DecodeError):
        structure(data, app["OrderPlaced"], where="test")


def test_the_cloudevent_headers_accept_what_actorbus_writes(asyncapi_oracle: Any) -> None:
    app = load_app()
    document = asyncapi(app["redis_system"]())
    envelope = actorbus.Envelope(
        type="shop.order.placed",
        source="shop",
        data=app["OrderPlaced"]("o-1", [], 1.0),
        scope=actorbus.Scope.APP,
        headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "replyto": "w-1"},
    )
    event = json.loads(encode(envelope))
    data = event.pop("data")
    pointer = "#/components/messages/shop.order.placed"
    assert asyncapi_oracle.validate(document, f"{pointer}/headers", event) == []
    assert asyncapi_oracle.validate(document, f"{pointer}/payload", data) == []
    event["type"] = "shop.other"
    assert asyncapi_oracle.validate(document, f"{pointer}/headers", event) != []


def test_the_headers_document_keys_groups_and_optional_attributes(
    asyncapi_oracle: Any,
) -> None:
    app = load_app()
    document = asyncapi(app["partitioned_system"]())
    attributes = document["components"]["schemas"]["actorbus.CloudEvent"]
    assert attributes["required"] == ["specversion", "id", "source", "type"]  # time: optional
    assert {"partitionkey", "togroup"} <= set(attributes["properties"])
    assert "application/octet-stream" in attributes["properties"]["datacontenttype"]["description"]
    pointer = "#/components/messages/cart.item_added/headers"
    # What `system.entity(Cart, "c-1").tell(...)` writes: the key and the kind's group.
    sent = actorbus.Envelope(
        type="cart.item_added",
        source="shop",
        data=app["ItemAdded"]("c-1", "book"),
        scope=actorbus.Scope.APP,
        headers={"partitionkey": "c-1", "togroup": "entity:Cart"},
    )
    event = json.loads(encode(sent))
    assert event["partitionkey"] == "c-1"
    del event["data"]
    assert asyncapi_oracle.validate(document, pointer, event) == []
    del event["time"]  # another producer's event, without a time
    assert asyncapi_oracle.validate(document, pointer, event) == []
    assert asyncapi_oracle.validate(document, pointer, {**event, "partitionkey": ""}) != []
    # Bytes data: base64, labelled as binary.
    blob = json.loads(
        encode(actorbus.Envelope(type="cart.item_added", source="shop", data=b"\x00\x01"))
    )
    assert blob["datacontenttype"] == "application/octet-stream"
    del blob["data_base64"]
    assert asyncapi_oracle.validate(document, pointer, blob) == []


# -- YAML ----------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["redis_system", "local_system"])
def test_yaml_reads_back_as_the_json_document(asyncapi_oracle: Any, factory: str) -> None:
    document = document_of(factory)
    text = to_yaml(document)
    assert asyncapi_oracle.read_yaml(text) == document
    found = asyncapi_oracle.diagnostics(text)
    assert [d for d in found if d["code"] not in ACCEPTED] == []


TRICKY = [
    "yes", "No", "ON", "null", "~", "true", "y", "NaN", ".inf", "1e3", "0x10", "0o7", "012",
    "1_000", "2024-01-01", "12:30", "- a", "a: b", "a:b", "#x", "a #b", "  lead", "trail ",
    "a\nb", "a\n", "\nb", "a\n\nb", " a\nb", "a\n b", "a \nb", "\ta", "a\tb", "a\r\nb",
    "'q'", '"q"', "@x", "`x", "&a", "*a", "!t", "%x", "{a}", "[a]", "a, b", "?", ":", "-",
    "|", ">", "<<", "=", "", " ", "\u0085", "a\u2028b", "\ufeffa", "\x7f", "\x00", "é ü",
    "😀", "a\\b", "$ref", "#/components/x",
]  # fmt: skip
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)  # JavaScript's exact integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(TRICKY),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text() | st.sampled_from(TRICKY), inner, max_size=4)
    ),
    max_leaves=12,
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(JSON_VALUES)
def test_yaml_reads_back_as_any_json_value(asyncapi_oracle: Any, value: object) -> None:
    assert as_numbers(asyncapi_oracle.read_yaml(to_yaml(value))) == as_numbers(value)


def as_numbers(value: object) -> object:
    """`value` with every number a float: JavaScript has one number type."""
    if isinstance(value, dict):
        return {key: as_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_numbers(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def test_yaml_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError, match="not JSON-shaped"):
        to_yaml({"a": {1, 2}})
    with pytest.raises(TypeError, match="keys must be strings"):
        to_yaml({1: "a"})
    with pytest.raises(ValueError, match="no JSON form"):
        to_yaml([float("nan")])


def test_the_guide_shows_what_is_printed(tmp_path: Path) -> None:
    guide = (TESTS.parent / "docs" / "guides" / "asyncapi.md").read_text()
    code = re.search(r"## An example\n\n```python\n(.*?)```", guide, re.DOTALL)
    excerpt = re.search(r"```yaml\n(.*?)```", guide, re.DOTALL)
    assert code is not None
    assert excerpt is not None
    (tmp_path / "shop_app.py").write_text(code.group(1))
    system = load_module(tmp_path / "shop_app.py", "shop_app")["system"]
    printed = "\n" + to_yaml(asyncapi(system, version="1.4.0"))
    fragments = excerpt.group(1).split("# …\n")
    assert len(fragments) > 5
    for fragment in fragments:
        assert "\n" + fragment in printed, fragment


def test_the_guide_shows_the_real_partition_tags() -> None:
    guide = (TESTS.parent / "docs" / "guides" / "asyncapi.md").read_text()
    section = guide.split("### Partitions", 1)[1]
    shown = re.findall(r'- "(\{shop\.p\d+\.\d+\})"', section.split("examples:", 1)[0])
    events = asyncapi(ActorSystem("shop", transport=RedisTransport(partitions=4)))
    assert shown == events["channels"]["events"]["parameters"]["partition"]["enum"]


# -- the command line ----------------------------------------------------------------------


def actorbus_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorbus", *args],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_command_prints_json_without_connecting(asyncapi_oracle: Any) -> None:
    # The transport points at port 1, where nothing listens: nothing is connected.
    result = actorbus_cmd("asyncapi", "asyncapi_app:system", "--app-version", "1.2.3")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["info"]["version"] == "1.2.3"
    assert document["servers"]["redis"]["host"] == "127.0.0.1:1"
    assert "Inventory.reserve" in document["operations"]
    assert_valid(asyncapi_oracle, document)


@pytest.mark.slow
def test_command_prints_yaml(asyncapi_oracle: Any) -> None:
    as_json = json.loads(actorbus_cmd("asyncapi", "asyncapi_app:local_system").stdout)
    result = actorbus_cmd("asyncapi", "asyncapi_app:local_system", "--yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('asyncapi: "3.0.0"\n')
    assert asyncapi_oracle.read_yaml(result.stdout) == as_json


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:system", "cannot import module 'no_such_module'"),
        ("asyncapi_app:missing", "has no attribute 'missing'"),
        ("worker_targets:not_a_system", "is int 42, not an ActorSystem"),
        ("asyncapi_app", "must look like 'module:attribute'"),
    ],
)
def test_command_reports_a_bad_target_in_one_line(target: str, message: str) -> None:
    result = actorbus_cmd("asyncapi", target)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_a_missing_node_fails_with_the_command_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="not on PATH") as failed:
        ensure_packages({"PATH": str(tmp_path)})
    assert install_command() in str(failed.value)
