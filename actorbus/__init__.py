"""actorbus: supervised actors and a scope-aware event bus for asyncio and trio."""

from ._actor import Actor as Actor
from ._asyncapi import asyncapi as asyncapi
from ._decorators import publish_call as publish_call
from ._decorators import publish_result as publish_result
from ._entities import EntityRef as EntityRef
from ._envelope import Envelope as Envelope
from ._events import Scope as Scope
from ._events import event as event
from ._exceptions import ActorbusError as ActorbusError
from ._exceptions import ActorStopped as ActorStopped
from ._exceptions import AskTimeout as AskTimeout
from ._exceptions import DecodeError as DecodeError
from ._exceptions import MailboxFull as MailboxFull
from ._exceptions import TransportError as TransportError
from ._handlers import handle as handle
from ._mailbox import Mailbox as Mailbox
from ._mailbox import Overflow as Overflow
from ._message import Outcome as Outcome
from ._public import expose as _expose
from ._records import ActorStats as ActorStats
from ._records import DeadLetter as DeadLetter
from ._records import ShardStats as ShardStats
from ._records import SystemStarted as SystemStarted
from ._records import SystemStopping as SystemStopping
from ._records import Terminated as Terminated
from ._ref import ActorRef as ActorRef
from ._router import Router as Router
from ._shard import Shard as Shard
from ._sharding import Sharding as Sharding
from ._supervision import Backoff as Backoff
from ._supervision import Policy as Policy
from ._supervision import Supervision as Supervision
from ._system import ActorSystem as ActorSystem
from ._system import current_system as current_system
from ._transport import Transport as Transport
from ._transport import TransportHost as TransportHost
from ._version import __version__ as __version__

__all__ = [
    "Actor",
    "ActorRef",
    "ActorStats",
    "ActorStopped",
    "ActorSystem",
    "ActorbusError",
    "AskTimeout",
    "Backoff",
    "DeadLetter",
    "DecodeError",
    "EntityRef",
    "Envelope",
    "Mailbox",
    "MailboxFull",
    "Outcome",
    "Overflow",
    "Policy",
    "Router",
    "Scope",
    "Shard",
    "ShardStats",
    "Sharding",
    "Supervision",
    "SystemStarted",
    "SystemStopping",
    "Terminated",
    "Transport",
    "TransportError",
    "TransportHost",
    "asyncapi",
    "current_system",
    "event",
    "handle",
    "publish_call",
    "publish_result",
]

_expose(globals(), __all__, __name__)
