"""`actorbus.contrib.fastapi`: the system lives exactly as long as the application.

Every test drives the application through the real ASGI lifespan protocol
(`asgi_lifespan.LifespanManager`) and real HTTP requests (`httpx.ASGITransport`), as an
ASGI server would. FastAPI, Starlette, asgi-lifespan and httpx are all anyio-based, so the
tests run on asyncio and on trio, like the rest of the suite.
"""

from __future__ import annotations

import contextlib
import runpy
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends, FastAPI

from actorbus import Actor, ActorSystem, event, handle
from actorbus.contrib.fastapi import STATE_KEY, get_system, lifespan

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start `app` through its lifespan, yield a client for it, then shut it down."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://shop"
        ) as client,
    ):
        yield client


async def test_the_example_app_runs_its_system_with_the_lifespan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app: FastAPI = runpy.run_path(str(EXAMPLE))["app"]
    async with serving(app) as client:
        # on_start ran before the first request could be served.
        assert capsys.readouterr().out.splitlines() == [
            "inventory: open with {'book': 3, 'lamp': 1}"
        ]
        placed = await client.post("/orders", json={"order_id": "o-1", "item": "book"})
        assert placed.status_code == 202
        assert placed.json()["event_id"]
        stock = await client.get("/stock/book")
        assert stock.status_code == 200
        # The ask is queued behind the published order in the same mailbox.
        assert stock.json() == {"item": "book", "available": 2}
        assert capsys.readouterr().out.splitlines() == ["inventory: reserved one book for o-1"]
    # Shutdown stopped the system gracefully: on_stop ran before the lifespan finished.
    assert capsys.readouterr().out.splitlines() == [
        "inventory: closing with {'book': 2, 'lamp': 1}"
    ]


async def test_a_factory_gives_each_start_a_fresh_system(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app: FastAPI = runpy.run_path(str(EXAMPLE))["app"]
    for _ in range(2):
        async with serving(app) as client:
            await client.post("/orders", json={"order_id": "o-1", "item": "lamp"})
            assert (await client.get("/stock/lamp")).json()["available"] == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines.count("inventory: open with {'book': 3, 'lamp': 1}") == 2
    assert lines.count("inventory: closing with {'book': 3, 'lamp': 0}") == 2


@event("contrib.ping")
class Ping:
    n: int


class Recorder(Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("start")

    async def on_stop(self) -> None:
        self.log.append("stop")

    @handle()
    async def ping(self, ping: Ping) -> int:
        self.log.append(f"ping {ping.n}")
        return ping.n + 1


def recorder_app(log: list[str], **fastapi_options: Any) -> FastAPI:
    app = FastAPI(**fastapi_options)

    @app.get("/ping/{n}")
    async def ping(n: int, system: Annotated[ActorSystem, Depends(get_system)]) -> int:
        return int(await system.actor("recorder").ask(Ping(n)))

    return app


async def test_a_prebuilt_system_and_the_app_state() -> None:
    log: list[str] = []
    system = ActorSystem("api")
    app = recorder_app(log, lifespan=lifespan(system))

    @app.get("/whoami")
    async def whoami(found: Annotated[ActorSystem, Depends(get_system)]) -> bool:
        return found is system and app.state.actorbus_system is system

    async with serving(app) as client:
        await system.spawn(Recorder, log, name="recorder")
        assert (await client.get("/ping/1")).json() == 2
        assert (await client.get("/whoami")).json() is True
    assert log == ["start", "ping 1", "stop"]
    assert not hasattr(app.state, STATE_KEY)


async def test_a_composed_lifespan_passes_the_state_on() -> None:
    log: list[str] = []
    system = ActorSystem("api")
    actorbus_lifespan = lifespan(system)

    @contextlib.asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        log.append("app up")
        async with actorbus_lifespan(app) as state:
            await system.spawn(Recorder, log, name="recorder")
            yield {**state, "db": "connected"}
        log.append("app down")

    app = recorder_app(log, lifespan=app_lifespan)
    async with serving(app) as client:
        assert (await client.get("/ping/5")).json() == 6
    assert log == ["app up", "start", "ping 5", "stop", "app down"]


async def test_a_router_lifespan_is_merged_into_the_app() -> None:
    log: list[str] = []

    async def build() -> ActorSystem:
        system = ActorSystem("api", actors=[])
        log.append("built")
        return system

    router = APIRouter(lifespan=lifespan(build))

    @router.get("/spawned")
    async def spawned(system: Annotated[ActorSystem, Depends(get_system)]) -> list[str]:
        if "recorder" not in system.stats():
            await system.spawn(Recorder, log, name="recorder")
        return sorted(system.stats())

    app = recorder_app(log)
    app.include_router(router)
    async with serving(app) as client:
        assert (await client.get("/spawned")).json() == ["recorder"]
        assert (await client.get("/ping/7")).json() == 8
    assert log == ["built", "start", "ping 7", "stop"]


def startup_error(kind: type[BaseException], match: str) -> pytest.RaisesGroup[BaseException]:
    """The lifespan's start-up error: bare on asyncio; asgi-lifespan's trio nursery groups it."""
    return pytest.RaisesGroup(
        pytest.RaisesExc(kind, match=match), allow_unwrapped=True, flatten_subgroups=True
    )


async def test_a_failing_on_start_keeps_the_app_from_starting() -> None:
    class Broken(Actor):
        async def on_start(self) -> None:
            raise ConnectionError("warehouse unreachable")

    app = FastAPI(lifespan=lifespan(lambda: ActorSystem("api", actors=[Broken])))
    with startup_error(ConnectionError, "warehouse unreachable"):
        async with LifespanManager(app):
            pass


async def test_a_factory_must_return_a_system() -> None:
    app = FastAPI(lifespan=lifespan(lambda: "not a system"))  # type: ignore[arg-type,return-value]
    with startup_error(TypeError, "returned a str"):
        async with LifespanManager(app):
            pass


async def test_get_system_without_the_lifespan_says_what_to_do() -> None:
    app = recorder_app([])
    async with serving(app) as client:
        with pytest.raises(RuntimeError, match=r"FastAPI\(lifespan=actorbus.contrib.fastapi"):
            await client.get("/ping/1")
