"""Every program in examples/ runs on both backends and tells the story it promises.

Each test loads the example fresh (`runpy.run_path`), so its `@event` classes are
registered inside the isolated event registry that conftest.py gives every test, then
awaits its `main()` and checks what it printed.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run examples/<name>.py's main() on the current backend; return its printed lines."""
    namespace: dict[str, Any] = runpy.run_path(str(EXAMPLES / f"{name}.py"))
    with anyio.fail_after(30):
        await namespace["main"]()
    return capsys.readouterr().out.splitlines()


async def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_example("quickstart", capsys)
    assert lines == [
        "inventory: started with {'book': 3}",
        "inventory: reserved one book for o-1",
        "inventory: saw shop.order.created from 'quickstart'",
        "inventory: reserved one book for o-2",
        "inventory: saw shop.order.created from 'quickstart'",
        "inventory: released one book from o-1",
        "inventory: saw shop.order.cancelled from 'quickstart'",
        "main: 2 book(s) left",
        "main: inventory handled 4 messages",
        "inventory: stopping with {'book': 2}",
        "main: system stopped",
    ]


async def test_order_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_example("order_pipeline", capsys)
    out = "\n".join(lines)
    # Retry recovers o-3 on its second call; o-4 is declined three times, then dead-lettered.
    assert "billing: gateway timeout for o-3 (call 1)" in lines
    assert "billing: captured 12.50 for o-3" in lines
    assert [line for line in lines if "declined for o-4" in line] == [
        f"billing: card declined for o-4 (call {n})" for n in (1, 2, 3)
    ]
    assert "dead letter: o-4 in billing (CardGatewayError)" in lines
    # The glitch restarts inventory: on_start runs on a fresh instance.
    assert [line for line in lines if "connected to the warehouse" in line] == [
        "inventory: connected to the warehouse {'book': 5, 'lamp': 2, 'glitch': 1} (restarts: 0)",
        "inventory: connected to the warehouse {'book': 2, 'lamp': 0, 'glitch': 1} (restarts: 1)",
    ]
    # The `on` override dead-letters the nonsense order instead of restarting.
    assert "dead letter: o-6 in inventory (ValueError)" in lines
    assert "inventory: reserved 1 book for o-7" in lines
    # RESTART does not retry the failing message: the glitch stays in stock.
    assert (
        "summary: captured 80.00 in all; warehouse now {'book': 1, 'lamp': 0, 'glitch': 1}" in lines
    )
    assert "summary: inventory processed=7 failed=2 retries=0 restarts=1 dead_lettered=1" in out
    assert "summary: billing processed=5 failed=4 retries=3 restarts=0 dead_lettered=1" in out
    assert "summary: 2 dead letter(s) recorded by the system" in lines


async def test_routers_and_emit(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_example("routers_and_emit", capsys)
    expected = [
        "confirm: order o-1 for 20.00",
        "confirm: order o-2 for 35.50",  # emit of a registered type builds the class
        "payments: p-1 success 99.99",  # emit of an ad-hoc type spreads the arguments
        "mailer: invoice for o-1, total 24.00",  # publish_result with a mapping
        "report: 2 line(s): order o-1, order o-2",  # publish_result with a type string
        (
            "audit: user.signed_up [before] "
            "{'args': [], 'kwargs': {'email': 'ada@example.com', 'plan': 'pro'}}"
        ),
        (
            "audit: user.signed_up [after] {'args': [], 'kwargs': "
            "{'email': 'ada@example.com', 'plan': 'pro', 'result': 'user-ada'}}"
        ),
        "welcome: mail ada@example.com about their pro plan (account user-ada)",
        "main: sign_up returned user-ada",
        "main: system stopped",
    ]
    for line in expected:
        assert line in lines
    # The false condition published nothing: one report only.
    assert sum(line.startswith("report:") for line in lines) == 1
    # Each step is drained before the next one starts.
    assert lines.index("confirm: order o-2 for 35.50") < lines.index("payments: p-1 success 99.99")


async def test_supervision_tree(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_example("supervision_tree", capsys)
    # The first fault restarts the station's whole subtree: both sensors, fresh state.
    assert [line for line in lines if line.startswith("station:")] == [
        "station: generation 1 starting its sensors",
        "station: generation 1 stopped (its sensors stopped first)",
        "station: generation 2 starting its sensors",
        "station: generation 2 stopped (its sensors stopped first)",
    ]
    assert "  sensor-b: stopped after 2 reading(s)" in lines  # the healthy sibling too
    assert "  sensor-b: started (station generation 2)" in lines
    assert "main: station answers generation 2" in lines
    assert "  sensor-b: 310.0 (average 310.0)" in lines  # the fresh sensor-b forgot 295, 305
    # Children stop before their parent.
    stop = lines.index("station: generation 1 stopped (its sensors stopped first)")
    assert lines.index("  sensor-b: stopped after 2 reading(s)") < stop
    # The second fault exceeds the restart intensity and reaches the system.
    assert lines[-1] == "main: the system stopped with SensorFault('sensor-b read -2.0 kelvin')"


async def test_bank(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_example("bank", capsys)
    # Entities are built on demand, concurrently: their lines come in any order.
    assert sorted(lines[:2]) == ["alice: built with 0", "bob: built with 0"]
    assert lines[2:7] == [
        "main: alice has 130",
        "main: refused: bob cannot pay 50",
        "main: bob still has 20",  # the failed withdrawal changed nothing
        "bob: transfer t-1 already credited",
        "main: alice has 70, bob 80",
    ]
    assert sorted(lines[8:10]) == ["alice: stopped with 70", "bob: stopped with 80"]
    assert lines[7:8] + lines[10:] == [
        "main: 2 accounts live",
        "main: 0 accounts live",
        "alice: built with 70",  # passivated, then built again with its balance
        "main: alice has 70",
        "main: 3 activations, 2 passivations, 12 messages, 1 dead-lettered",
        "alice: stopped with 70",
        "main: system stopped",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "last_line"),
    [
        pytest.param("quickstart", "main: system stopped", id="quickstart"),
        pytest.param(
            "order_pipeline",
            "summary: 2 dead letter(s) recorded by the system",
            id="order_pipeline",
        ),
        pytest.param("routers_and_emit", "main: system stopped", id="routers_and_emit"),
        pytest.param("bank", "main: system stopped", id="bank"),
        pytest.param(
            "supervision_tree",
            "main: the system stopped with SensorFault('sensor-b read -2.0 kelvin')",
            id="supervision_tree",
        ),
    ],
)
def test_command_line(name: str, last_line: str, anyio_backend: str) -> None:
    """`python examples/<name>.py --backend <backend>` exits 0 after telling its story."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--backend", anyio_backend],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == last_line
