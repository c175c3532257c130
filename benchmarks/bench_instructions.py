"""Instructions per message (callgrind): actorbus's hot paths beside the batched stream.

Wall-clock figures on a shared machine move by tens of percent; instruction counts do
not. For each case this runs ``valgrind --tool=callgrind`` over the case at two sizes
(20,000 and 60,000 messages) and reports the difference divided by 40,000: the cost of
one message, without start-up and shut-down. The baselines run the same way in the same
invocation:

- ``batched``: an anyio memory object stream (buffer 1000), ``send_nowait`` while there is
  room, the consumer draining with ``receive_nowait`` and awaiting a handler per message
  (``bench_core.py``'s batched consumer, and its ``Ping``);
- ``fanout_batched``: ten such streams, per event.

Cases: ``tell``, ``publish`` (one subscriber), ``fanout`` (ten subscribers, per event).
Every case builds its ``Ping(n)`` per message, as the baselines do, and checks that every
message was handled.

Needs valgrind (``apt-get install -y valgrind``); not part of ``run.py``.

    python benchmarks/bench_instructions.py                  # every case, asyncio and trio
    python benchmarks/bench_instructions.py --backend trio --cases tell,batched
"""

import argparse
import re
import shutil
import subprocess
import sys

import anyio
from anyio import WouldBlock, create_memory_object_stream
from bench_core import Ping, batched_consumer

from actorbus import Actor, ActorSystem, handle

SMALL, LARGE = 20_000, 60_000
FANOUT = 10
BASELINES = {"tell": "batched", "publish": "batched", "fanout": "fanout_batched"}


class Counter(Actor):
    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    @handle(Ping)
    async def on_ping(self, _ping: Ping) -> None:
        self.counts[0] += 1


async def tell(n: int) -> int:
    counts = [0]
    async with ActorSystem("instructions") as system:
        ref = await system.spawn(Counter, counts)
        for i in range(n):
            await ref.tell(Ping(i))
        await system.drain()
    return counts[0]


async def publish(n: int, subscribers: int = 1) -> int:
    counts = [0]
    async with ActorSystem("instructions") as system:
        for _ in range(subscribers):
            await system.spawn(Counter, counts)
        for i in range(n):
            await system.publish(Ping(i))
        await system.drain()
    return counts[0] // subscribers


async def fanout(n: int) -> int:
    return await publish(n, FANOUT)


async def _streams(n: int, width: int) -> int:
    counts = [0]

    async def handler(_: Ping) -> None:
        counts[0] += 1

    streams = [create_memory_object_stream[Ping](1000) for _ in range(width)]
    async with anyio.create_task_group() as tg:
        for _, receive in streams:
            tg.start_soon(batched_consumer, receive, handler)
        sends = [send for send, _ in streams]
        for i in range(n):
            item = Ping(i)
            for send in sends:
                try:
                    send.send_nowait(item)
                except WouldBlock:
                    await send.send(item)
        for send in sends:
            send.close()
    return counts[0] // width


async def batched(n: int) -> int:
    return await _streams(n, 1)


async def fanout_batched(n: int) -> int:
    return await _streams(n, FANOUT)


CASES = {f.__name__: f for f in (tell, publish, fanout, batched, fanout_batched)}


def _run_one(case: str, backend: str, n: int) -> None:
    """The child process: run `case` once under callgrind and check its count."""
    handled = anyio.run(CASES[case], n, backend=backend)
    if handled != n:
        sys.exit(f"{case} on {backend}: {handled} of {n} messages handled")


def _instructions(case: str, backend: str, n: int) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        case,
        backend,
        str(n),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"{case} on {backend} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_message(case: str, backend: str) -> int:
    """Instructions per message: the difference of two sizes, divided by theirs."""
    small = _instructions(case, backend, SMALL)
    large = _instructions(case, backend, LARGE)
    return round((large - small) / (LARGE - SMALL))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["asyncio", "trio", "all"], default="all")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, backend, n = args.child
        _run_one(case, backend, int(n))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install -y valgrind", file=sys.stderr)
        return 2
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    # A ratio needs its baseline measured in the same run.
    cases += [BASELINES[c] for c in cases if c in BASELINES and BASELINES[c] not in cases]
    backends = ["asyncio", "trio"] if args.backend == "all" else [args.backend]
    print(f"instructions per message (callgrind, ({LARGE:,} - {SMALL:,}) messages)")
    for backend in backends:
        counts = {case: per_message(case, backend) for case in cases}
        for case, count in counts.items():
            base = BASELINES.get(case)
            ratio = f"  ratio {counts[base] / count:.2f} of {base}" if base else ""
            print(f"  {backend:8s} {case:15s} {count:>9,}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
