"""Hostile input: whatever arrives from the wire is a `DecodeError` or plain data (SPEC §3, §4).

Property tests (hypothesis) throw arbitrary bytes, arbitrary JSON, CloudEvents whose
attributes have the wrong types, and types that name Python classes at the wire decoder,
at `Envelope.from_cloudevent` and at the conversion to registered event classes. Nothing
may escape but `DecodeError` (with a reason), nothing may be imported, and nothing named
by the wire may be built. Then a real Redis consumer is fed a batch of hostile entries
between valid ones: the valid ones are handled, the hostile ones dead-lettered with their
reason, and the consumer keeps consuming.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import datetime as dt
import importlib
import json
import os
import re
import secrets
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_support import AsyncRawClient, dead_key, events_key, raw_client

from actorbus import ActorSystem, DecodeError, Envelope, Scope, event, handle
from actorbus._convert import structure
from actorbus._events import lookup
from actorbus._wire import MAX_DEPTH, decode, encode
from actorbus.redis import RedisTransport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from redis_support import RedisServer

FUZZ = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- events -----------------------------------------------------------------------------------


@event("hostile.line")
class Line:
    sku: str
    quantity: int


@event("hostile.order", scope=Scope.APP)
class Order:
    order_id: str
    amount: float
    lines: list[Line]
    note: str | None
    tags: tuple[str, ...]
    placed: dt.datetime
    paid: bool
    stock: dict[int, str]  # JSON carries int keys as strings


@event("hostile.tree")
class Tree:
    label: str
    children: list[Tree]


@event("hostile.job", scope=Scope.APP)
class Job:
    n: int


class Canary:
    """A class the wire names: building it from the wire would be remote code execution."""

    built = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        Canary.built += 1


CLASS_PATHS = [
    "os.system",
    "builtins.eval",
    "builtins.exec",
    "subprocess.Popen",
    "importlib.import_module",
    "pickle.loads",
    "actorbus._system.ActorSystem",
    "test_hostile_input.Canary",
    "tests.test_hostile_input.Canary",
    "__main__.Canary",
    "antigravity",
    "this.s",
]


# -- the guard: no import, no eval, no class built ---------------------------------------------


@contextlib.contextmanager
def nothing_runs_from_the_wire() -> Iterator[None]:
    """Fail if the block imports a module or calls what a hostile type names.

    The patched functions raise to stop the attempt, and record it: a broad ``except``
    in the code under test must not hide it.
    """
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def refused(*args: object, **kwargs: object) -> Any:
            attempts.append(f"{name}{args[:1]!r}")
            raise AssertionError(f"{name} called while decoding hostile input")

        return refused

    patches = [
        (builtins, "__import__"),
        (importlib, "import_module"),
        (builtins, "eval"),
        (builtins, "exec"),
        (os, "system"),
        (subprocess.Popen, "__init__"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name in patches]
    modules = set(sys.modules)
    built = Canary.built
    # Patched by hand: pytest's MonkeyPatch imports while it patches.
    for owner, name in patches:
        setattr(owner, name, refuse(f"{getattr(owner, '__name__', owner)}.{name}"))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
    assert attempts == []
    assert set(sys.modules) - modules == set()
    assert Canary.built == built


def is_plain(value: object) -> bool:
    """Whether `value` is plain JSON data (what the decoder may produce), checked iteratively."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif type(item) not in (str, int, float, bool, type(None)):
            return False
    return True


def with_reason(error: DecodeError) -> DecodeError:
    assert str(error).strip()
    return error


def decode_guarded(
    raw: bytes | bytearray | memoryview | str, **kwargs: Any
) -> Envelope | DecodeError:
    """`decode(raw)`: an envelope of plain data, or the `DecodeError` (with a reason)."""
    try:
        with nothing_runs_from_the_wire():
            envelope = decode(raw, **kwargs)
    except DecodeError as exc:
        return with_reason(exc)
    assert type(envelope) is Envelope
    assert isinstance(envelope.data, bytes) or is_plain(envelope.data)
    return envelope


def structure_guarded(data: object, cls: type[Any]) -> object:
    """`structure(data, cls)`: an instance of `cls`, or the `DecodeError` (with a reason)."""
    try:
        with nothing_runs_from_the_wire():
            built = structure(data, cls, where="hostile test")
    except DecodeError as exc:
        return with_reason(exc)
    assert type(built) is cls
    return built


def cloudevent(**attributes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"specversion": "1.0", "id": "e-1", "source": "s", "type": "x.y"}
    return base | attributes


def wire(**attributes: Any) -> bytes:
    return json.dumps(cloudevent(**attributes)).encode()


# -- strategies ---------------------------------------------------------------------------------

texts = st.text(max_size=12)


def json_data(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**40), max_value=10**40)
        | floats
        | texts
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
        max_leaves=16,
    )


json_values = json_data(st.floats())  # NaN and infinities included: the decoder refuses them
finite_json_values = json_data(st.floats(allow_nan=False, allow_infinity=False))
utc_times = st.datetimes(
    min_value=dt.datetime(1, 1, 2),  # noqa: DTZ001 - bounds of a naive strategy
    max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
any_times = st.datetimes() | st.datetimes(timezones=offsets)
event_types = st.sampled_from([*CLASS_PATHS, "hostile.order", "hostile.line", "hostile.job"])

VALID_ATTRIBUTES: dict[str, st.SearchStrategy[Any]] = {
    "specversion": st.just("1.0"),
    "id": st.text(min_size=1, max_size=12),
    "source": st.text(min_size=1, max_size=12),
    "type": event_types | st.text(min_size=1, max_size=12),
    "time": any_times.map(dt.datetime.isoformat) | st.text(max_size=30),
    "subject": texts,
    "datacontenttype": st.just("application/json"),
    "data": json_values,
    "data_base64": st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()) | texts,
    "scope": st.sampled_from(["app", "process"]) | texts,
}


@st.composite
def hostile_cloudevents(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like a CloudEvent, each attribute right, wrong or missing."""
    out: dict[str, Any] = draw(
        st.dictionaries(
            st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True) | texts, json_values, max_size=3
        )
    )
    for name, valid in VALID_ATTRIBUTES.items():
        kind = draw(st.sampled_from(["valid", "valid", "valid", "wrong", "missing"]))
        if kind == "valid":
            out[name] = draw(valid)
        elif kind == "wrong":
            out[name] = draw(json_values)
        else:
            out.pop(name, None)
    return out


lines = st.builds(Line, sku=texts, quantity=st.integers(min_value=-(2**63), max_value=2**63))
RESERVED = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}
orders = st.builds(
    Order,
    order_id=texts,
    amount=st.floats(allow_nan=False, allow_infinity=False),
    lines=st.lists(lines, max_size=3),
    note=st.none() | texts,
    tags=st.lists(texts, max_size=3).map(tuple),
    placed=any_times,
    paid=st.booleans(),
    stock=st.dictionaries(st.integers(min_value=-(10**40), max_value=10**40), texts, max_size=3),
)
header_names = st.from_regex(r"[a-z0-9]{1,64}", fullmatch=True).filter(
    lambda name: name not in RESERVED | {"scope", "data_base64"}
)
envelopes = st.builds(
    Envelope,
    type=st.text(min_size=1, max_size=12),
    data=st.none() | finite_json_values.filter(lambda v: v is not None) | st.binary(max_size=16),
    source=st.text(min_size=1, max_size=12),
    id=st.text(min_size=1, max_size=12),
    time=utc_times,
    subject=st.none() | texts,
    datacontenttype=st.sampled_from(["application/json", "text/plain"]),
    scope=st.sampled_from(Scope),
    headers=st.dictionaries(header_names, texts, max_size=3),
)


def finite(value: object) -> bool:
    """Whether plain data holds no NaN or infinity (JSON has neither)."""
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")  # noqa: PLR0124 - NaN test
    if isinstance(value, dict):
        return all(finite(item) for item in value.values())
    if isinstance(value, list):
        return all(finite(item) for item in value)
    return True


# -- the wire decoder ---------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=256))
def test_arbitrary_bytes_decode_or_raise_decode_error(raw: bytes) -> None:
    decode_guarded(raw)


@FUZZ
@given(json_values)
def test_arbitrary_json_decodes_or_raises_decode_error(value: object) -> None:
    outcome = decode_guarded(json.dumps(value).encode())
    if not isinstance(value, dict):
        assert isinstance(outcome, DecodeError)


@settings(FUZZ, max_examples=60)
@given(hostile_cloudevents())
def test_cloudevents_with_wrong_attribute_types_decode_or_raise_decode_error(
    value: dict[str, Any],
) -> None:
    outcome = decode_guarded(json.dumps(value).encode())
    if isinstance(outcome, Envelope):
        for name in ("specversion", "id", "source", "type"):
            assert isinstance(value[name], str)
        assert finite(outcome.data)
        registered = lookup(outcome.type)
        if registered is not None:  # what the system does next
            structure_guarded(outcome.data, registered)


@FUZZ
@given(st.sampled_from(CLASS_PATHS), json_values)
def test_a_type_naming_a_python_class_stays_a_string_with_plain_data(
    type_: str, data: object
) -> None:
    hostile = {"__class__": type_, "py/object": type_, "args": ["rm -rf /"], "value": data}
    outcome = decode_guarded(wire(type=type_, data=hostile))
    if isinstance(outcome, Envelope):  # a NaN in `data` is refused, anything else decodes
        assert outcome.type == type_
        assert type(outcome.data) is dict
        assert outcome.data == hostile


def test_no_class_named_by_the_wire_is_imported_or_built() -> None:
    for type_ in CLASS_PATHS:
        envelope = decode_guarded(wire(type=type_, data={"__class__": type_}, subject=type_))
        assert isinstance(envelope, Envelope)
        assert envelope.data == {"__class__": type_}
    assert "antigravity" not in sys.modules
    assert "this" not in sys.modules


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),  # a UTF-8 byte order mark
        (b"[]", "JSON object"),
        (b"null", "JSON object"),
        (b'"os.system"', "JSON object"),
        (wire(data=float("nan")), "NaN"),
        (wire(data=[float("-inf")]), "Infinity"),
        (wire(data=float("inf")), "Infinity"),
        (b'{"specversion":"1.0","id":"e","source":"s","type":"t","data":1e999}', "float"),
        (
            b'{"specversion":"1.0","id":"e","source":"s","type":"t","data":' + b"9" * 5000 + b"}",
            "digits",
        ),
        (wire(specversion=1.0), "specversion"),
        (wire(specversion="0.3"), "specversion"),
        (wire(id=["e-1"]), "'id'"),
        (wire(source={}), "'source'"),
        (wire(type=None), "'type'"),
        (wire(type=7), "'type'"),
        (wire(time=0), "'time'"),
        (wire(time="0001-01-01T00:00:00+01:00"), "out of range"),
        (wire(time="9999-12-31T23:59:59-01:00"), "out of range"),
        (wire(time="2024-01-01T00:00:00"), "timezone"),
        (wire(subject=[]), "'subject'"),
        (wire(scope="galaxy"), "'scope'"),
        (wire(scope=["app"]), "'scope'"),
        (wire(data_base64="%%%"), "base64"),
        (wire(data_base64=1), "data_base64"),
        (wire(data=1, data_base64=""), "not both"),
        (wire(**{"Bad-Name": "x"}), "extension"),
        (wire(traceparent=[1]), "extension"),
    ],
)
def test_each_kind_of_bad_message_says_what_was_wrong(raw: bytes, reason: str) -> None:
    outcome = decode_guarded(raw)
    assert isinstance(outcome, DecodeError)
    assert reason in str(outcome)


def test_bytes_str_bytearray_and_memoryview_decode_alike() -> None:
    raw = wire(data={"a": [1, "é"]}, time="2024-05-01T12:00:00Z")
    decoded = [
        decode_guarded(form) for form in (raw, raw.decode(), bytearray(raw), memoryview(raw))
    ]
    assert all(isinstance(envelope, Envelope) for envelope in decoded)
    assert len({json.dumps(envelope.to_cloudevent()) for envelope in decoded}) == 1  # type: ignore[union-attr]


# -- sizes and strings ------------------------------------------------------------------------


def test_a_message_over_the_size_limit_is_refused_before_it_is_read() -> None:
    huge = wire(data="x" * 2000)
    outcome = decode_guarded(huge, max_bytes=1000)
    assert isinstance(outcome, DecodeError)
    assert "exceeds max_message_bytes=1000" in str(outcome)
    # A str is measured in UTF-8 bytes, not in characters.
    outcome = decode_guarded(wire(data="é" * 600).decode(), max_bytes=1000)
    assert isinstance(outcome, DecodeError)
    assert "max_message_bytes" in str(outcome)


def test_huge_strings_within_the_limit_decode_and_huge_bad_values_give_short_reasons() -> None:
    big = "x" * 500_000
    envelope = decode_guarded(wire(id=big, data=big, subject=big, note=big), max_bytes=3 * 10**6)
    assert isinstance(envelope, Envelope)
    assert envelope.id == envelope.data == big
    for raw in (wire(id=[big]), wire(time=big), wire(scope=big), wire(note=[big])):
        outcome = decode_guarded(raw)
        assert isinstance(outcome, DecodeError)
        assert len(str(outcome)) < 500  # the value is shown shortened, not 500 kB of it


@FUZZ
@given(st.text(st.characters(categories=["Cs"]) | st.sampled_from('a\\"é😀'), max_size=8))
def test_a_string_that_is_not_unicode_text_is_refused(text: str) -> None:
    """Lone surrogates (``"\\ud800"``) parse in Python but cannot be written as UTF-8."""
    outcome = decode_guarded(wire(id="e-1", data={"text": text}))  # json.dumps escapes them
    read = json.loads(json.dumps(text))  # JSON joins a high and a low surrogate into one
    try:
        read.encode()
    except UnicodeEncodeError:
        assert isinstance(outcome, DecodeError)
        assert "surrogate" in str(outcome)
    else:
        assert isinstance(outcome, Envelope)
        assert outcome.data == {"text": read}


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        (r"\ud83d\ude00", "😀"),  # a surrogate pair: one character
        (r"\\ud800", "\\ud800"),  # an escaped backslash, then plain letters
        (r"\\\ud83d\ude00", "\\😀"),
    ],
)
def test_surrogate_pairs_and_escaped_backslashes_are_text(escaped: str, text: str) -> None:
    raw = '{"specversion":"1.0","id":"e","source":"s","type":"t","data":"' + escaped + '"}'
    envelope = decode_guarded(raw.encode())
    assert isinstance(envelope, Envelope)
    assert envelope.data == text


@pytest.mark.parametrize("escaped", [r"\ud800", r"\udc00", r"\ude00\ud83d", r"\\\ud800"])
def test_lone_surrogates_are_refused_in_keys_values_and_attributes(escaped: str) -> None:
    for template in ('"id":"{}"', '"data":{{"{}":1}}', '"traceparent":"{}"'):
        attribute = template.format(escaped)
        raw = '{"specversion":"1.0","source":"s","type":"t","id":"e",' + attribute + "}"
        outcome = decode_guarded(raw.encode())
        assert isinstance(outcome, DecodeError)


# -- nesting ------------------------------------------------------------------------------------


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + "1" + closer * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 1000, 10**5, 10**6])
@pytest.mark.parametrize("shape", ["lists", "objects", "unclosed"])
def test_deep_nesting_is_refused_without_recursion(depth: int, shape: str) -> None:
    if shape == "lists":
        data = nested(depth - 1)  # the envelope object is the first level
    elif shape == "objects":
        data = nested(depth - 1, '{"a":', "}")
    else:
        data = "[" * (depth - 1)
    raw = '{"specversion":"1.0","id":"e","source":"s","type":"t","data":' + data + "}"
    outcome = decode_guarded(raw.encode(), max_bytes=8 * 10**6)
    if depth <= MAX_DEPTH and shape != "unclosed":
        assert isinstance(outcome, Envelope)
    else:
        assert isinstance(outcome, DecodeError)
        assert f"deeper than {MAX_DEPTH}" in str(outcome) or "not valid JSON" in str(outcome)
        if shape != "unclosed":
            assert f"deeper than {MAX_DEPTH}" in str(outcome)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "f({[" * 5000 + "]]]" * 5000
    envelope = decode_guarded(wire(data={"code": text, "list": [text] * 3}))
    assert isinstance(envelope, Envelope)
    assert envelope.data["code"] == text


def test_closing_brackets_inside_strings_do_not_hide_deep_nesting() -> None:
    """A string of "]" must not be subtracted from the depth of what follows it."""
    deep = nested(MAX_DEPTH + 10)
    for prefix in ('"' + "]" * 1000 + '"', '"\\"]]]]]]]]]]"', '"\\\\"'):
        raw = '{"specversion":"1.0","id":"e","source":"s","type":"t","data":[' + prefix
        outcome = decode_guarded((raw + "," + deep + "]}").encode())
        assert isinstance(outcome, DecodeError)
        assert "deeper than" in str(outcome)


@FUZZ
@given(
    st.recursive(
        st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
        max_leaves=40,
    )
)
def test_the_depth_limit_is_exact(value: object) -> None:
    def depth(item: object) -> int:
        if isinstance(item, list):
            return 1 + max(map(depth, item), default=0)
        if isinstance(item, dict):
            return 1 + max(map(depth, item.values()), default=0)
        return 0

    for wrap in (0, 30, 60, 61, 62, 63, 70):
        data = value
        for _ in range(wrap):
            data = [data]
        outcome = decode_guarded(wire(data=data))
        assert isinstance(outcome, Envelope) == (1 + depth(data) <= MAX_DEPTH)


# -- from_cloudevent and the conversion to registered classes ---------------------------------


@settings(FUZZ, max_examples=50)
@given(
    st.dictionaries(
        st.sampled_from([*VALID_ATTRIBUTES, "traceparent", 1, None]) | texts,
        json_values
        | st.sampled_from([b"x", {1, 2}, object(), Canary, float("nan"), dt.datetime.now(dt.UTC)]),
        max_size=12,
    )
)
def test_from_cloudevent_of_any_mapping_is_an_envelope_or_a_decode_error(
    value: dict[Any, Any],
) -> None:
    try:
        with nothing_runs_from_the_wire():
            Envelope.from_cloudevent(value)
    except DecodeError as exc:
        with_reason(exc)


def test_from_cloudevent_shows_deep_python_values_without_recursing() -> None:
    deep: list[Any] = []
    for _ in range(10**5):
        deep = [deep]
    for name in ("id", "time", "scope", "traceparent", "specversion"):
        with pytest.raises(DecodeError, match=name):
            Envelope.from_cloudevent(cloudevent(**{name: deep}))
    not_a_name: dict[Any, Any] = {**cloudevent(), 3: "x"}
    with pytest.raises(DecodeError, match="extension"):
        Envelope.from_cloudevent(not_a_name)


@FUZZ
@given(envelopes)
def test_a_valid_envelope_survives_the_wire(envelope: Envelope) -> None:
    assert decode_guarded(encode(envelope)) == envelope


@FUZZ
@given(orders, utc_times, st.dictionaries(header_names, texts, max_size=2))
def test_a_registered_event_survives_the_wire(
    order: Order, time: dt.datetime, headers: dict[str, str]
) -> None:
    envelope = Envelope(
        type="hostile.order", data=order, source="shop", time=time, headers=headers, scope=Scope.APP
    )
    back = decode_guarded(encode(envelope))
    assert isinstance(back, Envelope)
    rebuilt = attrs.evolve(back, data=structure_guarded(back.data, Order))
    assert rebuilt == envelope


GOOD_ORDER: dict[str, Any] = {
    "order_id": "o-1",
    "amount": 9.5,
    "lines": [{"sku": "a", "quantity": 2}],
    "note": None,
    "tags": ["x"],
    "placed": "2024-05-01T12:00:00+00:00",
    "paid": True,
    "stock": {"1": "a"},
}


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_int_key(key: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", key) is not None and str(int(key)) == key


def is_timestamp(value: object) -> bool:
    try:
        dt.datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


# What each field of Order takes from JSON (a float field takes an integer too).
FITS: dict[str, Callable[[Any], bool]] = {
    "order_id": lambda v: isinstance(v, str),
    "amount": lambda v: is_int(v) or isinstance(v, float),
    "lines": lambda v: (
        isinstance(v, list)
        and all(
            isinstance(x, dict) and isinstance(x.get("sku"), str) and is_int(x.get("quantity"))
            for x in v
        )
    ),
    "note": lambda v: v is None or isinstance(v, str),
    "tags": lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
    "placed": is_timestamp,
    "paid": lambda v: isinstance(v, bool),
    "stock": lambda v: (
        isinstance(v, dict) and all(is_int_key(k) and isinstance(x, str) for k, x in v.items())
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _hooks_built() -> None:
    """cattrs compiles a class's structuring code on first use: outside the guard."""
    for cls, data in ((Order, GOOD_ORDER), (Tree, {"label": "t", "children": []}), (Job, {"n": 1})):
        structure(data, cls, where="warm-up")


def test_a_good_order_structures() -> None:
    assert isinstance(structure_guarded(GOOD_ORDER, Order), Order)


@FUZZ
@given(st.sampled_from(sorted(FITS)), json_values)
def test_a_field_of_the_wrong_type_is_a_decode_error_naming_it(field: str, value: object) -> None:
    data = GOOD_ORDER | {field: value}
    outcome = structure_guarded(data, Order)
    if FITS[field](value):
        assert isinstance(outcome, Order)
    else:
        assert isinstance(outcome, DecodeError)
        assert f"data.{field}" in str(outcome)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("order_id", 5),  # cattrs alone would make it "5"
        ("order_id", ["o", 1]),  # ... or "['o', 1]"
        ("lines", [{"sku": "a", "quantity": 1.7}]),  # ... or quantity 1
        ("lines", [{"sku": "a", "quantity": True}]),
        ("lines", [{"sku": "a", "quantity": "02"}]),
        ("lines", [{"sku": "a"}]),
        ("lines", "abc"),
        ("lines", {"sku": "a", "quantity": 1}),
        ("tags", "abc"),  # ... or ("a", "b", "c")
        ("tags", {"a": 1}),  # ... or ("a",)
        ("amount", "9.5"),
        ("amount", True),
        ("paid", 1),
        ("paid", "false"),
        ("placed", 1714564800),
        ("placed", "yesterday"),
        ("stock", {"one": "a"}),
        ("stock", {"1.5": "a"}),
        ("stock", [["1", "a"]]),
    ],
)
def test_lossy_conversions_are_refused(field: str, value: object) -> None:
    outcome = structure_guarded(GOOD_ORDER | {field: value}, Order)
    assert isinstance(outcome, DecodeError)
    assert f"data.{field}" in str(outcome)


@FUZZ
@given(json_values)
def test_any_json_for_a_registered_class_is_an_instance_or_a_decode_error(value: object) -> None:
    for cls in (Order, Line, Tree, Job):
        structure_guarded(value, cls)


def test_recursion_in_the_data_is_a_decode_error() -> None:
    tree: dict[str, Any] = {"label": "leaf", "children": []}
    for _ in range(10**4):
        tree = {"label": "node", "children": [tree]}
    outcome = structure_guarded(tree, Tree)
    assert isinstance(outcome, DecodeError)


# -- a consumer under fire ----------------------------------------------------------------------


async def pending(raw: AsyncRawClient, app: str, group: str) -> int:
    return await raw.pending(events_key(app), group)


def job_entry(n: int) -> dict[str, bytes]:
    return {"e": encode(Envelope(type="hostile.job", data={"n": n}, source="raw", scope=Scope.APP))}


# (what the entry is, its stream fields, what the dead letter's reason says)
HOSTILE_ENTRIES: list[tuple[str, dict[bytes | str, bytes], str]] = [
    ("garbage bytes", {"e": secrets.token_bytes(64) + b"\xff"}, "not UTF-8"),
    ("not JSON", {"e": b"\x00\x01 nope"}, "not valid JSON"),
    ("a JSON array", {"e": b"[1, 2, 3]"}, "must be a JSON object"),
    ("deeply nested", {"e": wire(data=json.loads(nested(200)))}, "nested deeper than"),
    ("deeper still", {"e": ("[" * 60_000).encode()}, "nested deeper than"),
    ("a huge field", {"e": wire(data="x" * 70_000)}, "exceeds max_message_bytes"),
    ("NaN", {"e": wire(data={"n": float("nan")})}, "NaN"),
    (
        "a lone surrogate in a request",
        {"e": wire(id="\ud800", replyto="~x", type="hostile.job", data={"n": 10**6})},
        "surrogate",
    ),
    ("a time out of range", {"e": wire(time="0001-01-01T00:00:00+05:00")}, "out of range"),
    ("a bogus scope", {"e": wire(scope={"app": True})}, "'scope'"),
    ("a class path, no source", {"e": wire(type="os.system", source=None)}, "'source'"),
    ("a registered type, str for int", {"e": wire(type="hostile.job", data={"n": "x"})}, "data.n"),
    ("a registered type, float", {"e": wire(type="hostile.job", data={"n": 1.5})}, "data.n"),
    ("a registered type, list", {"e": wire(type="hostile.job", data={"n": [1]})}, "data.n"),
    ("a registered type, no field", {"e": wire(type="hostile.job", data={})}, "data.n"),
    ("no e field", {b"\xff\xfe": b"\x00"}, "no 'e' field"),
]


@pytest.mark.anyio
async def test_a_consumer_dead_letters_hostile_entries_and_keeps_consuming(
    redis_server: RedisServer,
) -> None:
    app = f"t-{secrets.token_hex(4)}"
    seen: list[int] = []
    class_paths: list[Envelope] = []

    @handle(Job)
    async def on_job(job: Job) -> None:
        seen.append(job.n)

    @handle("os.*", "builtins.*", "subprocess.*", "antigravity", "test_hostile_input.*")
    async def audit(envelope: Envelope) -> None:
        class_paths.append(envelope)

    harmless = ["os.system", "builtins.eval", "subprocess.Popen", "antigravity"]
    harmless += ["test_hostile_input.Canary"]
    transport = RedisTransport(redis_server.url, max_message_bytes=64 * 1024)
    expected: dict[bytes, tuple[str, str]] = {}
    built = Canary.built
    async with (
        raw_client(redis_server.url) as raw,
        ActorSystem(app, transport=transport) as system,
    ):
        await system.spawn(on_job)
        await system.spawn(audit)
        n = 0
        for what, fields, reason in HOSTILE_ENTRIES:
            await raw.xadd(events_key(app), job_entry(n))
            entry = await raw.xadd(events_key(app), fields)
            expected[entry] = (what, reason)
            n += 1
        for type_ in harmless:
            data = {"__class__": type_, "args": ["echo pwned"]}
            await raw.xadd(events_key(app), {"e": wire(type=type_, data=data)})
        with anyio.fail_after(10):
            while len(seen) < n or transport.stats().dead_lettered < len(HOSTILE_ENTRIES):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        # ... and it keeps consuming what comes after.
        for more in range(n, n + 5):
            await system.publish(Job(more))
        with anyio.fail_after(10):
            while len(seen) < n + 5 or len(class_paths) < len(harmless):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        group = f"b:{transport.instance}"
        with anyio.fail_after(10):  # every entry, good or bad, is acknowledged
            while (await pending(raw, app, group)) > 0:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        letters = await raw.entries(dead_key(app))
    assert sorted(seen) == list(range(n + 5))
    reasons = {fields[b"entry"]: fields[b"error"].decode() for _, fields in letters}
    assert set(reasons) == set(expected)
    for entry, (what, reason) in expected.items():
        assert "DecodeError" in reasons[entry], what
        assert reason in reasons[entry], what
    assert transport.stats().dead_lettered == len(HOSTILE_ENTRIES)
    assert [type(envelope.data) for envelope in class_paths] == [dict] * len(harmless)
    assert sorted(envelope.type for envelope in class_paths) == sorted(harmless)
    assert Canary.built == built
    assert "antigravity" not in sys.modules
