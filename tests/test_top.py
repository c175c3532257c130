"""``actorbus top`` in a pseudo-terminal: it draws the actors' names and quits on ``q``."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from functools import partial

import anyio.from_thread
from rich.console import Console

from actorbus import Actor, ActorSystem, event, handle
from actorbus.dashboard import listen, observe
from actorbus.dashboard._top import render


@event("top.tick")
class Tick:
    n: int


class Metronome(Actor):
    @handle()
    async def tick(self, tick: Tick) -> None:
        del tick


def read_until(fd: int, wanted: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} not shown; the screen had: {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the terminal closed: the program ended
                break
    return seen


def test_top_shows_the_actors_and_quits_on_q() -> None:
    system = ActorSystem("toptest", actors=[Metronome])
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(system),
    ):
        portal.call(partial(system.spawn, Metronome, name="second-metronome"))
        sock = listen("127.0.0.1:0")
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        watching = portal.start_task_soon(partial(observe, system, listen=sock, every=0.2))
        main, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "actorbus", "top", "--url", url, "--every", "0.2"],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"},
        )
        os.close(terminal)
        try:
            screen = read_until(main, b"second-metronome")
            assert b"Metronome" in screen
            os.write(main, b"q")
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(main)
            watching.cancel()


def test_names_are_drawn_as_text_never_as_markup() -> None:
    view = {
        "instance": "i",
        "totals": {},
        "kinds": [{"kind": "[bold red]Evil[/]", "count": 1, "rate": 0.0, "actors": []}],
        "letters": [],
    }
    console = Console(record=True, width=160)
    console.print(render({"app": "[link=x]app[/link]", "instances": [view], "streams": []}))
    text = console.export_text()
    assert "[bold red]Evil[/]" in text
    assert "[link=x]app[/link]" in text


def screen_of(state: dict[str, object]) -> str:
    console = Console(record=True, width=160)
    console.print(render(state))
    return console.export_text()


def test_entity_kinds_and_the_partition_map_are_drawn() -> None:
    view = {
        "instance": "w-1",
        "totals": {"actors": 3},
        "kinds": [{"kind": "Cart", "role": "entity", "count": 2, "actors": []}],
        "entities": [
            {
                "kind": "Cart",
                "group": "entity:Cart",
                "active": 2,
                "activations": 5,
                "passivations": 3,
                "processed": 40,
                "failed": 0,
                "partitions": [0, 1, 2, 5],
                "rate": 1.5,
            }
        ],
        "letters": [],
    }
    owners = [("w-1", 7), ("w-2", 3), ("w-1", 8), (None, None)]
    partitions = [
        {"group": "entity:Cart", "partitions": [
            {"partition": p, "owner": owner, "token": token}
            for p, (owner, token) in enumerate(owners)
        ]},
    ]  # fmt: skip
    text = screen_of({"app": "shop", "instances": [view], "partitions": partitions})
    lines = text.splitlines()
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]
    assert ["Cart", "2", "1.5", "5", "3", "40", "0", "0-2, 5"] in rows, text
    assert any("w-1" in line and "0#7 2#8" in line for line in lines), text
    assert any("w-2" in line and "1#3" in line for line in lines), text
    assert any("nobody" in line and " 3 " in line for line in lines), text


def test_a_state_of_another_shape_is_drawn_without_failing() -> None:
    """`top --url` reads JSON from a dashboard that may be another version, or none."""
    broken = {
        "app": "shop",
        "instances": [{"kinds": "oops", "totals": None, "entities": [1, None], "letters": 3}],
        "streams": {"not": "a list"},
        "partitions": [{"group": "g", "partitions": "no"}],
    }
    assert "shop" in screen_of(broken)
