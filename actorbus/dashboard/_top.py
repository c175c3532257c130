"""``actorbus top``: the dashboard's data in a terminal, redrawn in place (rich).

It reads the same state as the page: from the instances' reports in Redis, or from a
running dashboard's ``/api/state``. Keys (read without echo while it runs): ``q``
quits, ``s`` sorts by the next column, ``r`` reverses the order, ``i`` shows the next
instance. Every value is drawn as plain text (`rich.text.Text`), never as markup.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import termios
import tty
import urllib.request
from typing import TYPE_CHECKING, Any, Final, cast

import anyio

try:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.table import Table
    from rich.text import Text
except ImportError as _missing:  # the extra is not installed
    msg = "actorbus top needs rich: pip install 'actorbus[dashboard]'"
    raise ImportError(msg) from _missing

from actorbus.dashboard._observe import redis_state

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator, Iterator

    from actorbus.redis._status import StatusReader

__all__ = ["SORTS", "render", "run_top"]

SORTS: Final = ("rate", "depth", "failed", "processed", "name")
"""The columns ``s`` cycles through."""
_BLOCKS: Final = " ▁▂▃▄▅▆▇█"
_SPARK_POINTS: Final = 30
_LETTERS: Final = 5
_STREAMS: Final = 16
"""Streams listed one by one (with many partitions, the rest are counted)."""

Json = dict[str, Any]
"""A JSON object of the state (what ``/api/state`` returns, perhaps from another version)."""


def _object(value: object) -> Json:
    """`value` if it is a JSON object, else an empty one."""
    return cast("Json", value) if isinstance(value, dict) else {}


def _objects(value: object) -> list[Json]:
    """The JSON objects of `value` if it is a list (anything else in it is skipped)."""
    if not isinstance(value, list):
        return []
    return [cast("Json", item) for item in cast("list[object]", value) if isinstance(item, dict)]


def _number(value: object) -> float:
    """`value` if it is a number, else 0 (a state from another version may lack a field)."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


class _Screen:
    """What the keys changed: the sort column, its order, the instance shown."""

    def __init__(self) -> None:
        self.sort = 0
        self.reverse = False
        self.instance = 0
        self.quit = False

    def key(self, char: str) -> None:
        if char in "qQ":
            self.quit = True
        elif char == "s":
            self.sort = (self.sort + 1) % len(SORTS)
        elif char == "r":
            self.reverse = not self.reverse
        elif char == "i":
            self.instance += 1


def _spark(values: list[float]) -> str:
    points = values[-_SPARK_POINTS:]
    if not points:
        return ""
    top = max(points) or 1.0
    return "".join(_BLOCKS[round(v / top * (len(_BLOCKS) - 1))] for v in points)


def _n(value: object) -> Text:
    """A number as text; ``-`` for anything else (an unknown lag, a missing field)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return Text("-")
    return Text(f"{value:,.1f}" if isinstance(value, float) and value % 1 else f"{value:,.0f}")


def render(state: Json, screen: _Screen | None = None) -> Group:
    """The screen for `state` (what ``/api/state`` returns)."""
    screen = screen or _Screen()
    sort = SORTS[screen.sort]
    parts: list[Text | Table] = []
    instances = _objects(state.get("instances"))
    title = Text("actorbus top  ", style="bold")
    title.append(str(state.get("app", "")), style="bold cyan")
    title.append(f"  {len(instances)} instance(s) · sort: {sort}{' ↑' if screen.reverse else ''}")
    title.append("  (q quit, s sort, r reverse, i instance)", style="dim")
    parts.append(title)
    if state.get("transport_error"):
        parts.append(Text(str(state["transport_error"]), style="red"))
    if not instances:
        parts.append(Text("no instance reports yet", style="dim"))
        return Group(*parts)
    view = instances[screen.instance % len(instances)]
    totals = _object(view.get("totals"))
    parts.append(
        Text(
            f"instance {view.get('instance')} · {view.get('host')} pid {view.get('pid')} · "
            f"{_number(totals.get('actors')):,.0f} actors · "
            f"{_number(totals.get('rate')):,.1f} msg/s · "
            f"{_number(totals.get('failed')):,.0f} failed"
        )
    )
    parts.append(_actors_table(view, sort, reverse=screen.reverse))
    entities = _objects(view.get("entities"))
    if entities:
        parts.append(_entities_table(entities))
    parts.append(_streams_table(_objects(state.get("streams"))))
    groups = _objects(state.get("partitions"))
    if groups:
        parts.append(_partitions_table(groups))
    letters = _objects(view.get("letters"))
    if letters:
        table = Table("dead letter", "actor", "error", "event", title=None, expand=True)
        for letter in letters[:_LETTERS]:
            table.add_row(
                Text(str(letter.get("type"))),
                Text(str(letter.get("actor"))),
                Text(str(letter.get("error")), style="red"),
                Text(str(letter.get("preview")), overflow="ellipsis", no_wrap=True),
            )
        parts.append(table)
    return Group(*parts)


def _rows(kinds: list[Json]) -> Iterator[tuple[str, Json, float]]:
    """(label, row, actors) per kind, then per listed actor of kinds with several."""
    for kind in kinds:
        count = _number(kind.get("count"))
        yield str(kind.get("kind", "")), kind, count
        if count > 1:
            for actor in _objects(kind.get("actors")):
                yield f"  {actor.get('name', '')}", actor, 1


def _actors_table(view: Json, sort: str, *, reverse: bool) -> Table:
    table = Table(expand=True)
    for column in ("kind / actor", "n", "msg/s", "last minutes", "mailbox", "processed"):
        table.add_column(
            column, justify="left" if column in {"kind / actor", "last minutes"} else "right"
        )
    for column in ("failed", "restarts", "dropped"):
        table.add_column(column, justify="right")
    kinds = _objects(view.get("kinds"))
    if sort == "name":
        kinds.sort(key=lambda row: str(row.get("kind", "")), reverse=reverse)
    else:
        kinds.sort(key=lambda row: -_number(row.get(sort)), reverse=reverse)
    for label, row, count in _rows(kinds):
        spark = [_number(point) for point in cast("list[object]", row.get("spark") or [])]
        table.add_row(
            Text(label, style="bold" if not label.startswith(" ") else ""),
            _n(count),
            _n(row.get("rate")),
            Text(_spark(spark), style="cyan"),
            Text(f"{_number(row.get('depth')):,.0f}/{_number(row.get('capacity')):,.0f}"),
            _n(row.get("processed")),
            _n(row.get("failed")),
            _n(row.get("restarts")),
            _n(row.get("dropped")),
        )
    return table


def _entities_table(kinds: list[Json]) -> Table:
    table = Table("entity kind", expand=True)
    for column in ("active", "msg/s", "activations", "passivations", "processed", "failed"):
        table.add_column(column, justify="right")
    table.add_column("partitions here")
    for kind in kinds:
        table.add_row(
            Text(str(kind.get("kind", "")), style="bold"),
            _n(kind.get("active")),
            _n(kind.get("rate")),
            _n(kind.get("activations")),
            _n(kind.get("passivations")),
            _n(kind.get("processed")),
            _n(kind.get("failed")),
            Text(_ranges(kind.get("partitions")), overflow="ellipsis", no_wrap=True),
        )
    return table


def _partitions_table(groups: list[Json]) -> Table:
    """Per group and owner: how many partitions, which ones, and their fencing tokens."""
    table = Table("group", "owner", "n", "partitions (fencing token)", expand=True)
    for group in groups:
        by_owner: dict[str, list[str]] = {}
        for partition in _objects(group.get("partitions")):
            owner = partition.get("owner")
            token = partition.get("token")
            label = f"{partition.get('partition')}" + ("" if token is None else f"#{token}")
            by_owner.setdefault(str(owner) if owner else "nobody", []).append(label)
        for owner, labels in by_owner.items():
            table.add_row(
                Text(str(group.get("group", ""))),
                Text(owner, style="red" if owner == "nobody" else ""),
                _n(len(labels)),
                Text(" ".join(labels), overflow="ellipsis", no_wrap=True),
            )
    return table


def _ranges(value: object) -> str:
    """``[0, 1, 2, 5]`` as ``0-2, 5``."""
    items = cast("list[object]", value) if isinstance(value, list) else []
    runs: list[list[int]] = []
    for number in sorted({n for n in items if isinstance(n, int) and not isinstance(n, bool)}):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "none"


def _streams_table(streams: list[Json]) -> Table:
    table = Table("stream", "length", "group", "pending", "lag", expand=True)
    if len(streams) > _STREAMS + 1:  # many partitions: the first ones, then the dead letters
        more = len(streams) - _STREAMS - 1
        streams = [*streams[:_STREAMS], {"name": f"… {more} more streams"}, streams[-1]]
    for stream in streams:
        for group in _objects(stream.get("groups")) or [{}]:
            table.add_row(
                Text(str(stream.get("name"))),
                _n(stream.get("length")),
                Text(str(group.get("name", "-"))),
                _n(group.get("pending")),
                _n(group.get("lag")),
            )
    return table


def _from_url(url: str, token: str | None) -> Callable[[], Awaitable[Json]]:
    address = url.rstrip("/") + "/api/state"
    if not address.startswith(("http://", "https://")):
        msg = f"--url takes the http://HOST:PORT of a running dashboard, got {url!r}"
        raise ValueError(msg)

    def get() -> Json:
        request = urllib.request.Request(address)  # noqa: S310 - http(s) only, checked above
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                found = _object(json.loads(answer.read()))
        except (OSError, ValueError) as exc:  # no answer, or not JSON
            return {"app": url, "instances": [], "transport_error": f"cannot read {address}: {exc}"}
        return found

    async def fetch() -> Json:
        return await anyio.to_thread.run_sync(get)

    return fetch


def _from_redis(reader: StatusReader, app: str) -> Callable[[], Awaitable[Json]]:
    async def fetch() -> Json:
        return await redis_state(reader, app)

    return fetch


async def run_top(
    *,
    redis_url: str | None,
    app: str | None,
    url: str | None,
    token: str | None,
    prefix: str = "actorbus",
    every: float = 1.0,
) -> None:
    """Draw the state every `every` seconds until ``q`` (or Ctrl+C).

    Raises:
        ValueError: For a malformed URL.
    """
    async with contextlib.AsyncExitStack() as stack:
        if url is not None:
            fetch = _from_url(url, token)
        else:
            from actorbus.redis._status import StatusReader  # noqa: PLC0415 - optional extra

            assert redis_url is not None  # noqa: S101 - the CLI checks it
            assert app is not None  # noqa: S101
            reader = StatusReader(redis_url, app, prefix=prefix)
            stack.push_async_callback(reader.aclose)
            fetch = _from_redis(reader, app)
        screen = _Screen()
        console = Console()
        fd = sys.stdin.fileno() if sys.stdin.isatty() else None
        with _cbreak(fd), Live(console=console, screen=True, auto_refresh=False) as live:
            state = await fetch()
            while not screen.quit:
                live.update(render(state, screen), refresh=True)
                with anyio.move_on_after(every) as waiting:
                    while fd is not None and not screen.quit:
                        await anyio.wait_readable(fd)
                        for char in os.read(fd, 32).decode(errors="replace"):
                            screen.key(char)
                        live.update(render(state, screen), refresh=True)
                    if fd is None:
                        await anyio.sleep_forever()
                if waiting.cancelled_caught:
                    state = await fetch()


@contextlib.contextmanager
def _cbreak(fd: int | None) -> Generator[None]:
    """Keys one at a time and without echo, as `top` does; the terminal restored after."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
