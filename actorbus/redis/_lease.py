"""`Lease`: this instance's ownership of one partition of one group, and its fence.

The lease lives in Redis (``…:lease:{group}`` of the partition, see
`actorbus.redis._scripts`) with a time to live of ``lease`` seconds from when Redis
applied the last renewal. The owner cannot read Redis's clock, but it knows when it
*sent* that renewal, which was before Redis applied it; so the lease cannot expire in
Redis before ``sent + lease`` by the owner's clock (clocks run at the same rate, even if
they are set differently). The owner stops using the partition ``lease_margin`` before
that: its **fence** (`Lease.valid`, given to every delivery as `Tracker.fence`) turns
False at ``sent + lease - lease_margin``, so a message still waiting in a mailbox then is
left unhandled, for the next owner. The margin covers the time a command takes to reach
Redis: a command sent while the fence holds is carried out before the lease can expire.

A lease also follows the count of the states saved in its partition (`Lease.saves`), which
every save checks (see `actorbus.redis._scripts`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from actorbus.redis._config import Settings

__all__ = ["Lease", "clock"]

clock: Final = time.monotonic
"""The clock of leases (and of the rounds that renew them): the fence is checked for every
message, so it reads the system's monotonic clock directly (it runs through pauses such
as SIGSTOP, as it must) rather than asking the running backend each time."""


class Lease:
    """This instance's lease on `partition` of a group.

    Args:
        key: The lease's Redis key.
        partition: The partition.
        value: The lease value Redis holds for us (``<epoch>:<instance>:<nonce>``).
        sent: When the command that acquired it was sent (`clock`).
        settings: The transport's settings (``lease``, ``lease_margin``).
        saves: The partition's count of saves when it was acquired.
    """

    __slots__ = (
        "_settings",
        "key",
        "lost",
        "partition",
        "saves",
        "token",
        "valid_until",
        "value",
    )

    def __init__(
        self,
        key: str,
        partition: int,
        value: str,
        sent: float,
        settings: Settings,
        saves: int = 0,
    ) -> None:
        self.key = key
        self.partition = partition
        self.value = value
        self.saves = saves
        """The count of saves Redis holds for the partition, as far as this tenure knows:
        one more after each save its acknowledgements made."""
        self.token = int(value.split(":", 1)[0])
        """The fencing token: the epoch of this tenure, greater than every earlier one's."""
        self._settings = settings
        self.valid_until = 0.0
        self.lost = False
        """Set once the lease is known to be gone, or given up (`revoke`)."""
        self.renewed(sent)

    def __repr__(self) -> str:
        return f"<Lease partition={self.partition} token={self.token} valid={self.valid()}>"

    def valid(self) -> bool:
        """The fence: whether this instance may still use the partition (handle, read)."""
        return not self.lost and clock() < self.valid_until

    def remaining(self) -> float:
        """Seconds until the fence turns False (0 once it has)."""
        if self.lost:
            return 0.0
        return max(0.0, self.valid_until - clock())

    def renewed(self, sent: float) -> None:
        """Redis extended the lease with a renewal sent at `sent`."""
        settings = self._settings
        self.valid_until = max(self.valid_until, sent + settings.lease - settings.lease_margin)

    def revoke(self) -> None:
        """Stop using the partition now (the lease was lost, or is being handed over)."""
        self.lost = True
