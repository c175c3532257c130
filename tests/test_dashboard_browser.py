"""The dashboard in a real browser: Debian's Chromium, driven by playwright.

The system and its dashboard run in a thread of their own (an anyio blocking portal, on
asyncio and on trio); playwright's sync API drives Chromium from the test. Chromium is
the system's (``/usr/bin/chromium``), never a download: a missing one fails the tests
with the command that installs it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import pytest
from playwright.sync_api import sync_playwright

from actorbus import Actor, ActorSystem, Policy, Scope, Sharding, Supervision, event, handle
from actorbus.dashboard import listen, observe
from actorbus.testing import MemoryBroker, MemoryTransport

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get update && apt-get install -y chromium"
# As root, without a sandbox; no background networking: the machines have no internet.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "dashboard.png"
XSS = "<script>window.__xss=1</script>"
TOKEN = "browser-test-token"


@event("browser.order")
class Order:
    item: str


class Orders(Actor):
    @handle()
    async def take(self, order: Order) -> None:
        if order.item.startswith("<"):
            raise ValueError(f"no such item: {order.item}")


class Shipping(Actor):
    async def on_start(self) -> None:
        for _ in range(3):
            await self.spawn(Courier)


class Courier(Actor):
    @handle()
    async def ship(self, order: Order) -> None:
        del order


@event("browser.visit", scope=Scope.APP, key="basket")
class Visit:
    basket: str


class Basket(Actor):
    """An entity kind: one live basket per key."""

    sharding = Sharding()

    @handle()
    async def visit(self, visit: Visit) -> None:
        del visit


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"Chromium is missing ({CHROMIUM}); the browser tests need it: {INSTALL}")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield found
        found.close()


class Running:
    """A system with its dashboard, in a portal's thread."""

    def __init__(
        self, portal: anyio.from_thread.BlockingPortal, system: ActorSystem, broker: MemoryBroker
    ) -> None:
        self.portal = portal
        self.system = system
        self.broker = broker
        self.url = ""

    def publish(self, *events: Any) -> None:
        async def go() -> None:
            for one in events:
                await self.system.publish(one)
            await self.broker.drain()  # the APP events, through the in-memory transport
            await self.system.drain()

        self.portal.call(go)


@contextmanager
def running(backend: str, *, token: str | None = None) -> Iterator[Running]:
    # Four partitions of the in-memory transport: the page draws their owner map.
    broker = MemoryBroker()
    transport = MemoryTransport(broker, instance="shop-1", partitions=4)
    system = ActorSystem("shop", transport=transport, actors=[Orders, Shipping, Basket])
    with (
        anyio.from_thread.start_blocking_portal(backend) as portal,
        portal.wrap_async_context_manager(system),
    ):
        sock = listen("127.0.0.1:0")
        port = sock.getsockname()[1]
        future = portal.start_task_soon(
            partial(observe, system, listen=sock, token=token, every=0.2)
        )
        here = Running(portal, system, broker)
        here.url = f"http://127.0.0.1:{port}/"
        try:
            yield here
        finally:
            future.cancel()


@pytest.fixture(params=["asyncio", "trio"])
def app(request: pytest.FixtureRequest) -> Iterator[Running]:
    with running(request.param) as found:
        yield found


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    found = context.new_page()
    found.set_default_timeout(15_000)
    yield found
    context.close()


def processed_of(page: Page, kind: str) -> int:
    text = page.locator(f'tr.kind[data-kind="{kind}"] td.processed').inner_text()
    return int(text.replace(",", ""))


def test_the_page_shows_the_actors_the_tree_and_live_counts(app: Running, page: Page) -> None:
    app.publish(Order("apple"))
    page.goto(app.url)
    page.wait_for_selector('tr.kind[data-kind="Orders"]')
    page.wait_for_function(
        "() => document.querySelector('tr.kind[data-kind=\"Orders\"] td.processed')"
        ".textContent === '1'"
    )
    for name in ("Orders", "Shipping", "Courier"):
        assert page.locator(f'tr.kind[data-kind="{name}"]').count() == 1
    tree = page.locator(".tree")
    assert tree.locator('li[data-node="Shipping"] li[data-node="Courier-2"]').count() == 1
    assert tree.locator('li[data-node="Orders"]').count() == 1
    page.evaluate("window.__before = performance.timeOrigin")
    app.publish(Order("pear"), Order("plum"))
    page.wait_for_function(
        "() => document.querySelector('tr.kind[data-kind=\"Orders\"] td.processed')"
        ".textContent === '3'"
    )
    assert page.evaluate("window.__before === performance.timeOrigin")  # no reload
    assert processed_of(page, "Courier") == 9  # three couriers, three orders each


def test_the_page_shows_entity_kinds_and_the_partition_map(app: Running, page: Page) -> None:
    app.publish(Visit("b-1"), Visit("b-2"), Visit("b-3"), Visit("b-1"))
    page.goto(app.url)
    page.wait_for_function(
        "() => document.querySelector("
        "'tr.entity-kind[data-entity-kind=\"Basket\"] td.active')?.textContent === '3'"
    )
    kind = page.locator('tr.entity-kind[data-entity-kind="Basket"]')
    assert kind.locator("td.activations").inner_text() == "3"
    assert kind.locator("td.processed").inner_text() == "4"
    assert kind.locator("td.partitions-here").inner_text() == "0\u20133"  # en dash
    tree = page.locator(".tree")
    assert tree.locator('li.shard[data-node="Basket"] li[data-node="Basket/b-2"]').count() == 1
    group = page.locator('.partition-group[data-group="entity:Basket"]')
    cells = group.locator(".cell")
    assert cells.count() == 4
    assert {cells.nth(i).get_attribute("data-owner") for i in range(4)} == {"shop-1"}
    assert "fencing token" in (cells.first.get_attribute("title") or "")
    assert group.locator(".share").inner_text() == "shop-1: 4"


def test_a_dead_letter_shows_its_error_and_an_event_as_text(app: Running, page: Page) -> None:
    app.portal.call(
        partial(
            app.system.spawn, Orders, name="strict", supervision=Supervision(Policy.DEAD_LETTER)
        )
    )
    app.publish(Order(XSS))
    page.goto(app.url)
    letter = page.locator("tr.letter", has_text="strict")
    letter.wait_for()
    assert f"ValueError: no such item: {XSS}" in letter.locator("td.error").inner_text()
    assert XSS in letter.locator("code.preview").inner_text()
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("script").count() == 1  # the page's own, nothing injected


def test_drilling_into_a_kind_lists_its_actors(app: Running, page: Page) -> None:
    page.goto(app.url)
    page.locator('tr.kind[data-kind="Courier"]').click()
    for name in ("Courier", "Courier-2", "Courier-3"):
        page.locator(f'tr.actor[data-actor="{name}"]').wait_for()


def test_a_dashboard_with_a_token_refuses_a_browser_without_it(browser: Browser) -> None:
    with running("asyncio", token=TOKEN) as here:
        context = browser.new_context()
        try:
            page = context.new_page()
            answer = page.goto(here.url)
            assert answer is not None
            assert answer.status == 401
            assert page.locator("#instance").count() == 0
            answer = page.goto(f"{here.url}?token={TOKEN}")
            assert answer is not None
            assert answer.status == 200
            assert page.url == here.url  # the token left the address bar
            page.wait_for_selector('tr.kind[data-kind="Orders"]')
            assert TOKEN not in page.content()
        finally:
            context.close()


def test_a_screenshot_for_the_docs(browser: Browser, tmp_path: Path) -> None:
    """The page under steady traffic; ``ACTORBUS_UPDATE_SCREENSHOT=1`` saves it for the docs."""
    target = SCREENSHOT if os.environ.get("ACTORBUS_UPDATE_SCREENSHOT") else tmp_path / "page.png"
    with ExitStack() as stack:
        here = stack.enter_context(running("asyncio"))
        # A second instance of the application shares the partitions (the map's owners).
        other = MemoryTransport(here.broker, instance="shop-2", partitions=4)
        second = ActorSystem("shop", transport=other, actors=[Basket])
        stack.enter_context(here.portal.wrap_async_context_manager(second))

        async def traffic() -> None:
            for number in itertools.count():
                await here.system.publish(Order(f"item-{number}"))
                if number % 7 == 0:
                    await here.system.publish(Visit(f"basket-{number % 40}"))
                await anyio.sleep(0.002 if number % 500 < 250 else 0.01)

        feeding = here.portal.start_task_soon(traffic)
        here.portal.call(
            partial(
                here.system.spawn,
                Orders,
                name="strict",
                supervision=Supervision(Policy.DEAD_LETTER),
            )
        )
        here.publish(Order("<unknown>"))
        context = browser.new_context(viewport={"width": 1280, "height": 980})
        try:
            page = context.new_page()
            page.goto(here.url)
            time.sleep(6)  # some history for the sparklines
            page.locator('tr.kind[data-kind="Courier"]').click()
            page.locator('tr.actor[data-actor="Courier-2"]').wait_for()
            page.screenshot(path=str(target), full_page=True)
        finally:
            context.close()
            feeding.cancel()
    assert target.stat().st_size > 10_000
    assert target.read_bytes()[:4] == b"\x89PNG"
