"""Shared helpers of the benchmark scripts: result entries, targets, tables, machine info.

Every benchmark script writes a JSON list of entries with the same keys (see `Entry`), so
`run.py` can merge them into `benchmarks/results.json` and print one table. The scripts
also share their command line's common options, the choice of backends and a private
redis-server when no ``--url`` is given.
"""

import argparse
import contextlib
import importlib.util
import json
import operator
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
"""The test helpers' folder (``redis_support``, ``cluster_support``, the workers)."""

RUNS = 3
"""Every figure is measured this many times; the median is reported."""

BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
"""Backend label -> (anyio backend, anyio backend_options)."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
}


class BenchError(RuntimeError):
    """A benchmark's own check failed: its figure must not be reported."""


def check(condition: object, what: str) -> None:
    """Raise `BenchError` unless `condition` holds (not `assert`: `-O` must not skip it)."""
    if not condition:
        raise BenchError(what)


@dataclass
class Entry:
    """One reported figure.

    `ratio` is `value / baseline_value` unless the figure says otherwise (a figure that is
    itself a ratio repeats its value there). `target` reads "ratio >= 0.40" style: the
    ratio must satisfy it (or "value <= 3000": an absolute bound on the value, in its
    unit); `met` is the verdict (None: no target, or no value).
    """

    figure: str
    backend: str
    value: float | None
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline_value:
            self.ratio = self.value / self.baseline_value
        if self.target is not None and self.met is None:
            subject, op, threshold = self.target.split()
            measured = self.value if subject == "value" else self.ratio
            if measured is not None:
                self.met = _OPS[op](measured, float(threshold))


def median(values: Sequence[float]) -> float:
    """The median of the runs."""
    return statistics.median(values)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted samples."""
    index = min(len(sorted_values) - 1, max(0, int(len(sorted_values) * fraction + 0.5) - 1))
    return sorted_values[index]


def rss_bytes() -> int:
    """The resident set size of this process, in bytes (Linux: /proc/self/statm)."""
    with Path("/proc/self/statm").open() as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def now() -> float:
    """The benchmark clock."""
    return time.perf_counter()


def _version(module: str) -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version(module)
    except Exception:
        return "not installed"


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages as ``/proc/loadavg`` says ("unknown" without it)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    return {
        "nproc": str(os.cpu_count()),
        "loadavg": loadavg(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "anyio": _version("anyio"),
        "trio": _version("trio"),
        "uvloop": _version("uvloop"),
        "actorbus": _version("actorbus"),
    }


def machine_summary() -> str:
    """One line of `machine_info`: CPU and cores, load average, Python version."""
    info = machine_info()
    return f"{info['cpu']} x{info['nproc']}, load {info['loadavg']}, Python {info['python']}"


def fmt(value: float | None) -> str:
    """A compact human-readable number."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _verdict(entry: Entry) -> str:
    if entry.error is not None:
        return "FAILED"
    if entry.met is None:
        return ""
    return "met" if entry.met else "MISSED"


def _rows(entries: Iterable[Entry]) -> list[list[str]]:
    return [
        [
            e.figure,
            e.backend,
            fmt(e.value) if e.error is None else "error",
            e.unit,
            e.baseline_name or "",
            fmt(e.baseline_value) if e.baseline_name else "",
            f"{e.ratio:.2f}" if e.ratio is not None else "",
            e.target or "",
            _verdict(e),
        ]
        for e in entries
    ]


HEADER = ["figure", "backend", "value", "unit", "baseline", "baseline value", "ratio", "target", ""]


def format_table(entries: Iterable[Entry]) -> str:
    """A plain-text table for the terminal."""
    rows = [HEADER, *_rows(entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    numeric = {2, 5, 6}
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in numeric and number else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(entries: Iterable[Entry]) -> str:
    """A Markdown table (for benchmarks/README.md)."""
    rows = _rows(entries)
    lines = [
        "| " + " | ".join([*HEADER[:-1], "verdict"]) + " |",
        "|---|---|--:|---|---|--:|--:|---|---|",
    ]
    lines.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def failed(entries: Iterable[Entry]) -> list[Entry]:
    """The entries whose benchmark broke."""
    return [e for e in entries if e.error is not None]


def write_json(path: str | Path, entries: Iterable[Entry]) -> None:
    """Write the entries as a JSON list."""
    Path(path).write_text(json.dumps([asdict(e) for e in entries], indent=2) + "\n")


def read_json(path: str | Path) -> list[Entry]:
    """Read entries written by `write_json` (by any benchmark script)."""
    return [Entry(**item) for item in json.loads(Path(path).read_text())]


def argument_parser(doc: str | None, quick: str, *, url: bool = True) -> argparse.ArgumentParser:
    """A parser with the options every Redis benchmark script takes.

    ``--quick`` (helped by `quick`), ``--backend`` (one of `BACKENDS` or "all"),
    ``--url`` (unless `url` is false) and ``--json``; the description is the first paragraph
    of `doc` (the script's docstring).
    """
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    if url:
        parser.add_argument("--url", help="Redis URL; default: start a private redis-server")
    parser.add_argument("--json", metavar="PATH", help="write the entries as JSON to PATH")
    return parser


def each_backend(choice: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(label, anyio backend, backend options) of each backend ``--backend`` chose.

    "all" is every one of `BACKENDS`; uvloop is skipped (with a line on stderr) when it is
    not installed. Says on stderr which backend is measured next.
    """
    for label in list(BACKENDS) if choice == "all" else [choice]:
        if label == "uvloop" and importlib.util.find_spec("uvloop") is None:
            print("  [uvloop] skipped: uvloop is not installed", file=sys.stderr)
            continue
        backend, options = BACKENDS[label]
        print(f"measuring on {label} ...", file=sys.stderr, flush=True)
        yield label, backend, options


@contextlib.contextmanager
def redis_url(url: str | None) -> Iterator[str]:
    """`url` itself, or (None) the URL of a private redis-server kept running meanwhile."""
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(TESTS))
    from redis_support import RedisServer  # noqa: PLC0415 - only needed without --url

    with RedisServer() as server:
        yield server.url


def finish(entries: list[Entry], json_path: str | None) -> int:
    """Write the entries to `json_path` (when given), print their table; the exit status.

    The status is 1 when a benchmark broke (an entry with an error), else 0.
    """
    if json_path:
        write_json(json_path, entries)
    print(format_table(entries))
    return 1 if failed(entries) else 0
