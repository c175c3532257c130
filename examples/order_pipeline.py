"""An order pipeline: orders -> inventory -> billing, with supervision and dead letters.

- Inventory restarts (a fresh instance, `on_start` again) when its warehouse connection
  breaks, and dead-letters orders it cannot make sense of.
- Billing retries a flaky card gateway with backoff, then dead-letters the payment.
- A watcher handles every `DeadLetter`, so nothing fails silently.

Run it with ``python examples/order_pipeline.py`` (add ``--backend trio`` for trio, with the
trio extra installed: ``pip install -e '.[trio]'``).
"""

from __future__ import annotations

import argparse
import logging

import anyio

from actorbus import (
    Actor,
    ActorSystem,
    Backoff,
    DeadLetter,
    Policy,
    Supervision,
    event,
    handle,
)


@event("pipeline.order.placed")
class OrderPlaced:
    order_id: str
    item: str
    quantity: int
    amount: float


@event("pipeline.stock.reserved")
class StockReserved:
    order_id: str
    amount: float


@event("pipeline.payment.captured")
class PaymentCaptured:
    order_id: str
    amount: float


@event("pipeline.ledger.total")
class LedgerTotal:
    """A question for the ledger: how much was captured so far?"""


class WarehouseUnavailableError(Exception):
    """The (pretend) warehouse connection broke; a fresh connection fixes it."""


class CardGatewayError(Exception):
    """The (pretend) card gateway failed."""


class Inventory(Actor):
    """Reserves stock. A broken connection restarts it; a nonsense order is dead-lettered."""

    supervision = Supervision(
        Policy.RESTART,  # any exception not listed in `on`: build a fresh instance
        max_restarts=3,
        within=60.0,  # a 4th restart within 60 s would escalate instead
        on={ValueError: Policy.DEAD_LETTER},
    )

    def __init__(self, warehouse: dict[str, int]) -> None:
        self.warehouse = warehouse  # the source of truth, shared with main()
        self.connected = False

    async def on_start(self) -> None:
        self.connected = True  # runs again on every fresh instance after a restart
        restarts = self.ref.stats.restarts
        print(f"inventory: connected to the warehouse {self.warehouse} (restarts: {restarts})")

    @handle()
    async def reserve(self, order: OrderPlaced) -> None:
        if order.quantity <= 0:
            msg = f"order {order.order_id} asks for {order.quantity} {order.item}"
            raise ValueError(msg)
        if order.item == "glitch":
            self.connected = False
            msg = "warehouse connection reset"
            raise WarehouseUnavailableError(msg)
        self.warehouse[order.item] -= order.quantity
        print(f"inventory: reserved {order.quantity} {order.item} for {order.order_id}")
        await self.publish(StockReserved(order.order_id, order.amount))


class Billing(Actor):
    """Charges cards through a gateway that fails now and then."""

    supervision = Supervision(
        Policy.RETRY,
        max_retries=2,  # up to 3 calls in all
        backoff=Backoff(initial=0.01, maximum=0.05),
        then=Policy.DEAD_LETTER,  # what happens when the retries are used up
    )

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    @handle()
    async def charge(self, reserved: StockReserved) -> None:
        call = self.calls[reserved.order_id] = self.calls.get(reserved.order_id, 0) + 1
        if reserved.order_id == "o-3" and call == 1:
            print(f"billing: gateway timeout for {reserved.order_id} (call {call})")
            raise CardGatewayError(reserved.order_id)
        if reserved.order_id == "o-4":
            print(f"billing: card declined for {reserved.order_id} (call {call})")
            raise CardGatewayError(reserved.order_id)
        print(f"billing: captured {reserved.amount:.2f} for {reserved.order_id}")
        await self.publish(PaymentCaptured(reserved.order_id, reserved.amount))


class Ledger(Actor):
    """Sums what was captured."""

    def __init__(self) -> None:
        self.total = 0.0

    @handle()
    async def book(self, payment: PaymentCaptured) -> None:
        self.total += payment.amount

    @handle()
    async def report(self, _: LedgerTotal) -> float:
        return self.total


class DeadLetterWatcher(Actor):
    """Sees every message that was given up on, with the actor and the reason."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    @handle()
    async def watch(self, letter: DeadLetter) -> None:
        self.letters.append(letter)
        order_id = getattr(letter.envelope.data, "order_id", "?")
        print(f"dead letter: {order_id} in {letter.actor} ({type(letter.error).__name__})")


async def main() -> None:
    warehouse = {"book": 5, "lamp": 2, "glitch": 1}
    orders = [
        OrderPlaced("o-1", "book", 2, 25.0),
        OrderPlaced("o-2", "lamp", 1, 30.0),
        OrderPlaced("o-3", "book", 1, 12.5),  # the gateway fails once: a retry recovers it
        OrderPlaced("o-4", "lamp", 1, 30.0),  # the card is declined every time
        OrderPlaced("o-5", "glitch", 1, 1.0),  # breaks the connection: inventory restarts
        OrderPlaced("o-6", "book", 0, 0.0),  # makes no sense: dead-lettered by `on=`
        OrderPlaced("o-7", "book", 1, 12.5),  # handled by the fresh inventory instance
    ]
    async with ActorSystem("pipeline") as system:
        inventory = await system.spawn(Inventory, warehouse, name="inventory")
        billing = await system.spawn(Billing, name="billing")
        ledger = await system.spawn(Ledger, name="ledger")
        watcher = await system.spawn(DeadLetterWatcher, name="dead-letters")
        for order in orders:
            print(f"-- publish {order.order_id}: {order.quantity} {order.item}")
            await system.publish(order)
            await system.drain()  # let the whole chain finish before the next order
        total = await ledger.ask(LedgerTotal(), timeout=1.0)
        # RESTART does not retry the failing message: o-5's glitch is still in stock.
        print(f"summary: captured {total:.2f} in all; warehouse now {warehouse}")
        for ref in (inventory, billing, ledger, watcher):
            stats = ref.stats
            print(
                f"summary: {ref.name} processed={stats.processed} failed={stats.failed} "
                f"retries={stats.retries} restarts={stats.restarts} "
                f"dead_lettered={stats.dead_lettered}"
            )
        print(f"summary: {len(system.dead_letters)} dead letter(s) recorded by the system")


class _OneLine(logging.Formatter):
    """Library log records on one line each (the tracebacks would drown the story)."""

    def formatException(self, ei: object) -> str:  # noqa: ARG002, N802 - logging's API
        return ""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine("  log %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    anyio.run(main, backend=parser.parse_args().backend)
