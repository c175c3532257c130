"""The actorbus error hierarchy: every error the library raises on purpose is an ActorbusError."""

from __future__ import annotations

__all__ = [
    "ActorStopped",
    "ActorbusError",
    "AskTimeout",
    "DecodeError",
    "MailboxFull",
    "TransportError",
]


class ActorbusError(Exception):
    """Base class of every error actorbus raises on purpose.

    Catch it to handle any library error; the subclasses say what went wrong.
    """


class MailboxFull(ActorbusError):
    """A message could not be delivered because the actor's mailbox is full.

    Raised to the sender when the mailbox uses `Overflow.FAIL`. The message is also
    counted as dropped and recorded as a dead letter, so nothing is lost silently.
    """


class AskTimeout(ActorbusError, TimeoutError):
    """No reply arrived in time for `ActorRef.ask` or `ActorSystem.request`.

    It is also a `TimeoutError`, so code that already handles timeouts keeps working.
    """


class ActorStopped(ActorbusError):
    """The actor has stopped: it accepts no more messages.

    Raised by `tell` and `ask` on a stopped actor, and given to askers whose question
    was still waiting in the mailbox when the actor stopped.
    """


class DecodeError(ActorbusError, ValueError):
    """Bytes or data could not be turned into an envelope or an event.

    Raised for malformed CloudEvents, data that does not match the registered event
    class, and undecodable wire entries. A transport never crashes on it: the message
    is dead-lettered with this error as the reason.
    """


class TransportError(ActorbusError, ConnectionError):
    """The transport could not carry an event: its server did not accept it in time.

    Raised by `ActorSystem.publish` (and `request`) for an APP-scope event when the
    transport's server (Redis) was unreachable or refused the event within the
    transport's publish timeout. Treat the event as not published: publish it again once
    the server is back. In rare cases (the connection broke after the server took the
    event but before it answered) the event did get through, so a retry can deliver it
    twice: handlers that use the envelope id as an idempotency key are safe either way.
    It is also a `ConnectionError`, so code that handles connection failures keeps working.
    """
