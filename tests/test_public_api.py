"""The public surface: what `actorbus` (and `actorbus.testing`) export, and how it shows.

Like anyio's ``test_all_attributes``: every public name exists, ``__all__`` is sorted, and
re-exported classes and functions show the public module path in reprs and tracebacks.
"""

import importlib
import inspect
import sys
import types

import pytest

import actorbus
import actorbus.contrib.fastapi
import actorbus.contrib.otel
import actorbus.contrib.prometheus
import actorbus.redis
import actorbus.testing

PACKAGES = [
    pytest.param(actorbus, id="actorbus"),
    pytest.param(actorbus.testing, id="actorbus.testing"),
    pytest.param(actorbus.redis, id="actorbus.redis"),
    pytest.param(actorbus.contrib.fastapi, id="actorbus.contrib.fastapi"),
    pytest.param(actorbus.contrib.otel, id="actorbus.contrib.otel"),
    pytest.param(actorbus.contrib.prometheus, id="actorbus.contrib.prometheus"),
]


def public_objects(module: types.ModuleType) -> list[tuple[str, object]]:
    return [(name, getattr(module, name)) for name in module.__all__]


@pytest.mark.parametrize("module", PACKAGES)
def test_every_name_in_all_exists(module: types.ModuleType) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module", PACKAGES)
def test_all_is_sorted_and_without_duplicates(module: types.ModuleType) -> None:
    assert list(module.__all__) == sorted(module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module", PACKAGES)
def test_public_classes_and_functions_show_the_public_module(module: types.ModuleType) -> None:
    wrong = {
        name: obj.__module__
        for name, obj in public_objects(module)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ != module.__name__
    }
    assert wrong == {}


@pytest.mark.parametrize("module", PACKAGES)
def test_every_public_class_and_function_is_documented(module: types.ModuleType) -> None:
    undocumented = [
        name
        for name, obj in public_objects(module)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not inspect.getdoc(obj)
    ]
    assert undocumented == []


def test_the_contract_names_are_exported() -> None:
    """The names SPEC §2 and §3 promise at the top level."""
    promised = {
        "Actor",
        "ActorRef",
        "ActorStopped",
        "ActorSystem",
        "ActorbusError",
        "AskTimeout",
        "Backoff",
        "DeadLetter",
        "DecodeError",
        "Envelope",
        "Mailbox",
        "MailboxFull",
        "Overflow",
        "Policy",
        "Router",
        "Scope",
        "Supervision",
        "SystemStarted",
        "SystemStopping",
        "Terminated",
        "current_system",
        "event",
        "handle",
        "publish_call",
        "publish_result",
    }
    assert promised <= set(actorbus.__all__)


def test_the_error_hierarchy() -> None:
    for error in (
        actorbus.MailboxFull,
        actorbus.AskTimeout,
        actorbus.ActorStopped,
        actorbus.DecodeError,
    ):
        assert issubclass(error, actorbus.ActorbusError)
    assert issubclass(actorbus.ActorbusError, Exception)
    assert issubclass(actorbus.AskTimeout, TimeoutError)


def test_version_is_a_string() -> None:
    assert isinstance(actorbus.__version__, str)
    assert actorbus.__version__


def test_reprs_show_the_public_path() -> None:
    assert repr(actorbus.Envelope).startswith("<class 'actorbus.Envelope'")
    assert repr(actorbus.ActorSystem).startswith("<class 'actorbus.ActorSystem'")


@pytest.mark.parametrize(
    ("module", "dependency", "extra"),
    [
        ("actorbus.contrib.fastapi", "starlette.requests", "fastapi"),
        ("actorbus.contrib.otel", "opentelemetry", "otel"),
        ("actorbus.contrib.prometheus", "prometheus_client", "prometheus"),
    ],
    ids=["fastapi", "otel", "prometheus"],
)
def test_an_integration_imported_without_its_dependency_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, dependency: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, dependency, None)
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ImportError, match=rf"pip install 'actorbus\[{extra}\]'"):
        importlib.import_module(module)
