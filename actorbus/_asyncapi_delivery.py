"""What an operation of the AsyncAPI document says about how its handler gets its events.

A handler is a broadcast subscriber, a member of a competing-consumer group (whose
partitions, when there are several, are each read by one member at a time), or a
handler of an entity kind (one live entity per key). `delivery_text` says which, in the
operation's description.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._declared import Subscription

__all__ = ["delivery_text"]


def delivery_text(
    subscription: Subscription, *, across: bool, consumer_group: str | None, partitions: int
) -> str:
    """How `subscription`'s handler gets the events of one channel.

    Args:
        subscription: The handler.
        across: Whether the events come from every instance (the APP events, carried by
            a transport), not from this process only.
        consumer_group: The Redis consumer group it reads through, when known.
        partitions: How many partitions the APP events are split into.
    """
    if subscription.entity is not None:
        return _entity_text(subscription, across=across, consumer_group=consumer_group)
    handler, actor, group = subscription.handler, subscription.actor, subscription.group
    text = f"Handler `{handler}` of actor `{actor}`. "
    if group is None and across:
        text += "Broadcast: every running instance of the application receives each event"
    elif group is None:
        text += "Broadcast: every subscriber in the process receives each event"
    elif across:
        text += (
            f"Competing consumers: each event is handled by one live member of group "
            f"`{group}` across all instances (at least once)"
        )
    else:
        text += f"Competing consumers: one member of group `{group}` in the process, in turn"
    if consumer_group is not None:
        text += f", through the consumer group `{consumer_group}`"
    if group is not None and across and partitions > 1:
        text += (
            f". Each of the {partitions} partitions is handled by one live member at a "
            "time, so the events of one key (`partitionkey`) are handled in order"
        )
    return text + "."


def _entity_text(subscription: Subscription, *, across: bool, consumer_group: str | None) -> str:
    entity = subscription.entity
    assert entity is not None  # noqa: S101 - the caller checked
    text = (
        f"Handler `{subscription.handler}` of entity kind `{entity.kind}`: each event goes "
        "to the entity of its key (`partitionkey`), built on demand and stopped when idle; "
        "an event without a key is dead-lettered. "
    )
    if across:
        text += (
            f"The kind is the group `{subscription.group}`: one live entity per key across "
            "all instances, in the instance that owns the key's partition"
        )
        if consumer_group is not None:
            text += f", through the consumer group `{consumer_group}`"
        text += (
            ". Messages sent with `system.entity(Kind, key)` take the same path, with "
            "`togroup` naming the kind's group"
        )
    else:
        text += "One live entity per key, in the process"
    if entity.state is not None:
        where = "with the message's acknowledgement" if across else "in memory"
        text += (
            f". Its state is committed after each message, {where}: each message changes "
            "it exactly once"
        )
    return text + "."
