"""The Redis Streams bridge: APP-scope events across processes (``pip install actorbus[redis]``).

See the guide "Running across processes with Redis" for the delivery guarantees, the key
layout and operations.
"""

from actorbus._public import expose
from actorbus.redis._health import RedisStats
from actorbus.redis._transport import RedisTransport

__all__ = ["RedisStats", "RedisTransport"]

expose(globals(), __all__, __name__)
