"""Requests over Redis after a failed one: the reply listener starts again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from redis_support import new_app, raw_client

from actorbus import ActorSystem, Scope, TransportError, event, handle
from actorbus.redis import RedisTransport

if TYPE_CHECKING:
    from redis_support import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@event("requests.double", scope=Scope.APP)
class Double:
    n: int


@handle(Double)
async def double(event: Double) -> int:
    return event.n * 2


async def test_a_request_works_after_one_whose_reply_listener_could_not_start(
    redis_server: RedisServer,
) -> None:
    user, password = f"probe{new_app()}", "probe-password"
    async with raw_client(redis_server.url) as raw:
        # Everything but the command the reply listener starts with.
        await raw("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all", "-xrevrange")
        url = f"redis://{user}:{password}@{redis_server.host}:{redis_server.port}/0"
        transport = RedisTransport(url, claim_after=5.0)
        async with ActorSystem(new_app(), transport=transport, actors=[double]) as system:
            with pytest.raises(TransportError, match="cannot read replies"):
                await system.request(Double(1), timeout=5.0)
            await raw("ACL", "SETUSER", user, "+xrevrange")
            assert await system.request(Double(2), timeout=5.0) == 4
        await raw("ACL", "DELUSER", user)
