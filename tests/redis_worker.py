"""A slow worker process for the crash test in test_redis.py (killed with SIGKILL there).

Usage: REDIS_URL=... python redis_worker.py APP OUTFILE DELAY

(The URL, which holds the password, comes from the environment so `ps` does not show it.)

Runs an instance of APP whose member of group "work" sleeps DELAY seconds per event, then
appends the event id to OUTFILE (one per line, flushed at once). Prints "ready" when the
system runs, so the test knows the group exists before it publishes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from actorbus import ActorSystem, Envelope, handle
from actorbus.redis import RedisTransport


async def main(url: str, app: str, outfile: Path, delay: float) -> None:
    with outfile.open("a") as out:

        @handle("job.created", group="work")
        async def work(envelope: Envelope) -> None:
            await anyio.sleep(delay)
            out.write(envelope.id + "\n")
            out.flush()

        transport = RedisTransport(url, claim_after=1.0)
        async with ActorSystem(app, transport=transport) as system:
            await system.spawn(work)
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await anyio.sleep_forever()


if __name__ == "__main__":
    app, outfile, delay = sys.argv[1:4]
    anyio.run(main, os.environ["REDIS_URL"], app, Path(outfile), float(delay))
