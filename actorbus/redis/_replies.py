"""Request/reply across instances: the reply an instance sends, and the listener that waits.

A request is an ordinary event carrying the extension attribute ``replyto`` (the
requesting instance's name). Every instance that handles it and whose handler returned
(or raised) adds one entry to ``replies:{replyto}``: ``id`` (the request's envelope id),
``ok`` (``1`` or ``0``), ``value`` (the reply as JSON) or ``error`` (the exception's type
and message), and ``instance`` (who answered). The requester's listener reads that
stream and wakes the waiting `request`; the first reply wins, later ones are ignored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import attrs

from actorbus._convert import unstructure
from actorbus._exceptions import ActorbusError, AskTimeout, TransportError
from actorbus.redis._config import check_instance, is_anonymous
from actorbus.redis._context import REPLY_SLACK
from actorbus.redis._errors import TRANSIENT, RedisError, ReplyError
from actorbus.redis._health import Retry, logger
from actorbus.redis._protocol import fields_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from actorbus._envelope import Envelope
    from actorbus._message import Delivery
    from actorbus.redis._client import DedicatedConnection
    from actorbus.redis._context import Context

__all__ = ["REPLY_MAXLEN", "REPLY_TTL", "Requests", "reply_fields", "reply_target"]

REPLY_TO: Final = "replyto"
"""The CloudEvents extension attribute naming the instance that waits for a reply."""

REPLY_MAXLEN: Final = 1000
REPLY_TTL: Final = 3600
"""Seconds a reply stream outlives its last reply (so a crashed requester's stream goes)."""


def reply_target(envelope: Envelope) -> str | None:
    """The instance waiting for a reply to `envelope`, if it is a well-formed request."""
    target = envelope.headers.get(REPLY_TO)
    if not target:
        return None
    name = target[1:] if is_anonymous(target) else target
    try:
        check_instance(name)
    except ValueError:
        return None
    return target


def reply_fields(envelope: Envelope, delivery: Delivery, instance: str) -> dict[bytes, bytes]:
    """The reply entry for a handled request (`delivery` has a reply)."""
    fields = {b"id": envelope.id.encode(), b"instance": instance.encode()}
    if delivery.error is None:
        try:
            fields[b"value"] = json.dumps(unstructure(delivery.value), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            fields[b"ok"] = b"0"
            fields[b"error"] = f"the reply is not JSON-serialisable: {exc}".encode()
            return fields
        fields[b"ok"] = b"1"
    else:
        fields[b"ok"] = b"0"
        fields[b"error"] = f"{type(delivery.error).__name__}: {delivery.error}".encode()
    return fields


class _Waiter:
    __slots__ = ("done", "error", "type", "value")

    def __init__(self, type_: str) -> None:
        self.type = type_
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class ReplyListener:
    """Reads this instance's reply stream and wakes the requests waiting for them."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._key = context.keys.replies(context.instance)
        self._waiters: dict[str, _Waiter] = {}
        self.scope = anyio.CancelScope()  # one per listener: a scope is entered once

    def expect(self, envelope: Envelope) -> _Waiter:
        """Register interest in the replies to `envelope` (before sending it)."""
        waiter = self._waiters[envelope.id] = _Waiter(envelope.type)
        return waiter

    def forget(self, envelope: Envelope) -> None:
        """Stop waiting for replies to `envelope`."""
        self._waiters.pop(envelope.id, None)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Listen until cancelled; started once the position to read from is known.

        Raises:
            RedisError: If that position cannot be read (before start).
        """
        connection = self._context.dedicated(self._key)
        settings = self._context.settings
        timeout = settings.block + settings.publish_timeout + REPLY_SLACK
        try:
            with self.scope:
                newest = await connection.call(
                    b"XREVRANGE", self._key, b"+", b"-", b"COUNT", 1, timeout=timeout
                )
                task_status.started()
                await self._listen(connection, newest[0][0] if newest else b"0-0", timeout)
        finally:
            await connection.close()

    async def _listen(self, connection: DedicatedConnection, last: bytes, timeout: float) -> None:
        """Read replies after `last` until cancelled; Redis outages are waited out."""
        health = self._context.health
        retry = Retry(health)
        settings = self._context.settings
        while True:
            try:
                found = await connection.call(
                    *(b"XREAD", b"COUNT", settings.batch, b"BLOCK", settings.block_ms),
                    *(b"STREAMS", self._key, last),
                    timeout=timeout,
                )
            except TRANSIENT as exc:
                health.failed(exc)
                await retry.sleep()
                continue
            except ReplyError as exc:
                logger.error("reading replies failed: %s", health.describe(exc))
                await retry.sleep()
                continue
            health.succeeded()
            retry.reset()
            # The RESP2 reply: [[key, [[id, [field, value, ...]], ...]]], or nil.
            for entry_id, values in found[0][1] if found else ():
                last = entry_id
                self._settle(fields_of(values))

    def _settle(self, fields: Mapping[Any, Any]) -> None:
        waiter = self._waiters.get(fields.get(b"id", b"").decode(errors="replace"))
        if waiter is None or waiter.done.is_set():
            return  # a late or duplicate reply: the first one won
        instance = fields.get(b"instance", b"?").decode(errors="replace")
        if fields.get(b"ok") == b"1":
            try:
                waiter.value = json.loads(fields.get(b"value", b"null"))
            except ValueError as exc:
                waiter.error = ActorbusError(
                    f"instance {instance!r} sent an unreadable reply to {waiter.type!r}: {exc}"
                )
        else:
            error = fields.get(b"error", b"unknown error").decode(errors="replace")
            waiter.error = ActorbusError(
                f"remote handler of {waiter.type!r} in instance {instance!r} raised {error}"
            )
        waiter.done.set()


class Requests:
    """Sends this instance's requests and waits for their replies.

    The reply listener (one task with its own client, blocked on the reply stream) starts
    with the first request, in the system's task group.
    """

    def __init__(
        self,
        context: Context,
        task_group: anyio.abc.TaskGroup,
        send: Callable[[Envelope], Awaitable[None]],
    ) -> None:
        self._context = context
        self._task_group = task_group
        self._send = send
        self._listener: ReplyListener | None = None
        self._lock = anyio.Lock()
        self.scope = anyio.CancelScope()
        """The running listener's scope; the transport cancels it to stop listening."""

    async def request(self, envelope: Envelope, timeout: float) -> Any:
        """Publish `envelope` with ``replyto`` set; return the first reply to it.

        Raises:
            AskTimeout: If no reply came within `timeout`.
            ActorbusError: If the remote handler raised.
            TransportError: If Redis did not accept the request.
        """
        listener = await self._start_listener()
        instance = self._context.instance
        envelope = attrs.evolve(envelope, headers={**envelope.headers, REPLY_TO: instance})
        waiter = listener.expect(envelope)
        try:
            with anyio.move_on_after(timeout):
                await self._send(envelope)
                await waiter.done.wait()
        finally:
            listener.forget(envelope)
        if not waiter.done.is_set():
            msg = (
                f"no instance of {self._context.keys.app!r} answered {envelope.type!r} (id "
                f"{envelope.id}) within {timeout}s: check that a running instance handles it, "
                "or raise the timeout"
            )
            raise AskTimeout(msg)
        return waiter.result()

    async def _start_listener(self) -> ReplyListener:
        async with self._lock:
            if self._listener is None:
                if self.scope.cancel_called:  # the transport stops
                    msg = "cannot send the request: the transport is closing"
                    raise TransportError(msg)
                listener = ReplyListener(self._context)
                self.scope = listener.scope
                try:
                    await self._task_group.start(listener.run)
                except RedisError as exc:
                    msg = (
                        f"cannot read replies from Redis at {self._context.where}: "
                        f"{self._context.health.describe(exc)}"
                    )
                    raise TransportError(msg) from None
                self._listener = listener
            return self._listener
