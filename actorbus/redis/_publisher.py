"""Publishing: concurrent XADDs coalesced into pipelines, each caller awaiting its own reply.

`Publisher.publish` queues the encoded envelope and waits (up to the publish timeout) until
Redis answered *its* XADD. One task, `Publisher.run`, takes what is queued — waiting for
the first item, then whatever else is already there, up to `batch` — and sends it in one
write on its own connection (a `Link`: no other task involved), then reads the replies:
one round trip for many events when many tasks publish at once, and no added delay for a
lone publisher. Entries reach Redis in the order they were queued, so the events of one
publishing task keep their order. While Redis is unreachable the batch is retried with a
short backoff until each caller's own deadline passes; a caller whose deadline passed (or
who was cancelled) gets `TransportError` and its event is dropped from later attempts, so
an event is never reported published unless Redis accepted it. (A batch whose replies were
lost may have been applied: sent again, its events are in the stream twice — at-least-once.)

Each entry has two fields: ``e``, the CloudEvents JSON, and ``t``, the event type, so a
consumer can acknowledge an entry that no local subscriber wants without decoding it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from coredis.exceptions import RedisError

from actorbus._exceptions import TransportError
from actorbus.redis._health import TRANSIENT, Backoff
from actorbus.redis._link import Command, link_for

if TYPE_CHECKING:
    from actorbus.redis._context import Context

__all__ = ["Publisher"]


class _Item:
    """One queued XADD and its caller's wake-up."""

    __slots__ = ("abandoned", "done", "entry", "error", "last_error", "payload", "type")

    def __init__(self, payload: bytes, type_: str) -> None:
        self.payload = payload
        self.type = type_
        self.done = anyio.Event()
        self.entry: bytes | None = None
        self.error: BaseException | None = None
        self.last_error: BaseException | None = None
        self.abandoned = False


class Publisher:
    """Coalesces concurrent XADDs to the events stream into pipelines (module docs)."""

    def __init__(self, context: Context) -> None:
        self._link = link_for(context)
        self._key = context.keys.events.encode()
        settings = self._settings = context.settings
        self._health = context.health
        self._counters = context.counters
        self._where = context.where
        send, receive = anyio.create_memory_object_stream[_Item](settings.batch * 4)
        self._send = send
        self._receive = receive
        self._head: Command = (b"XADD", self._key)
        if settings.maxlen is not None:
            self._head += (b"MAXLEN", b"~", settings.maxlen)
        self._head += (b"*", b"e")

    async def publish(self, payload: bytes, type_: str, what: str) -> bytes:
        """Add `payload` (an event of `type_`) to the stream; return its id once accepted.

        Waits at most `publish_timeout` seconds in all (queueing included). A
        cancellation point; a caller cancelled before its batch was sent is dropped.

        Raises:
            TransportError: If Redis did not accept the entry in time, refused it, or the
                transport is closed. `what` names the event in the message.
        """
        item = _Item(payload, type_)
        timeout = self._settings.publish_timeout
        try:
            with anyio.fail_after(timeout):
                try:
                    self._send.send_nowait(item)
                except anyio.WouldBlock:
                    await self._send.send(item)
                await item.done.wait()
        except TimeoutError:
            item.abandoned = True
            cause = item.last_error
            reason = f" (last error: {self._health.describe(cause)})" if cause else ""
            msg = (
                f"Redis at {self._where} did not accept {what} within publish_timeout="
                f"{timeout}s{reason}; it was not published: publish it again once Redis is "
                "reachable"
            )
            raise TransportError(msg) from cause
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            msg = f"cannot publish {what}: the Redis transport is closed"
            raise TransportError(msg) from None
        except BaseException:
            item.abandoned = True
            raise
        if item.error is not None:
            msg = (
                f"Redis at {self._where} refused {what}: {self._health.describe(item.error)}; "
                "it was not published (check the ACL user's permissions and Redis memory)"
            )
            raise TransportError(msg) from item.error
        assert item.entry is not None  # noqa: S101 - set with done
        return item.entry

    def close(self) -> None:
        """Stop taking entries; `run` returns once it sent what was queued."""
        self._send.close()

    def discard(self) -> None:
        """Release the queue once `run` returned (or never ran): nothing more is sent."""
        self._send.close()
        self._receive.close()

    async def run(self) -> None:
        """Send queued entries in pipelines until `close` (the one publishing task)."""
        try:
            with self._receive:
                async for first in self._receive:
                    await self._send_batch(self._more([first]))
        finally:
            await self._link.close()

    def _more(self, items: list[_Item]) -> list[_Item]:
        """`items` plus whatever else is queued right now, up to `batch` live ones."""
        items = [item for item in items if not item.abandoned]
        while len(items) < self._settings.batch:
            try:
                item = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            if not item.abandoned:
                items.append(item)
        return items

    async def _send_batch(self, items: list[_Item]) -> None:
        # A short backoff: callers are waiting, and their own deadlines bound the retries.
        backoff = Backoff(initial=0.02, maximum=0.5)
        head = self._head
        while items:
            commands = [(*head, item.payload, b"t", item.type) for item in items]
            try:
                replies = await self._link.pipeline(
                    commands, timeout=self._settings.publish_timeout
                )
            except TRANSIENT as exc:
                replies = [exc] * len(items)
            except RedisError as exc:  # refused while connecting (credentials, ACL)
                replies = [exc] * len(items)
            retry: list[_Item] = []
            for item, reply in zip(items, replies, strict=True):
                if isinstance(reply, TRANSIENT):  # e.g. READONLY during a failover
                    item.last_error = reply
                    retry.append(item)
                elif isinstance(reply, RedisError):
                    item.error = reply
                    item.done.set()
                else:
                    item.entry = reply
                    self._counters.published += 1
                    item.done.set()
            if not retry:
                self._health.succeeded()
                return
            self._health.failed(retry[0].last_error or TimeoutError())
            await backoff.sleep()
            items = self._more(retry)
