"""`actorbus demo`: a small shop run on the embedded default (no infrastructure).

Orders flow from a publisher to an inventory actor, which reserves stock and publishes
`StockReserved`; billing charges the card, and its flaky card gateway fails now and then
— the RETRY supervision recovers it, and an order that keeps failing is dead-lettered.
"""

from __future__ import annotations

from actorbus import (
    Actor,
    ActorSystem,
    Backoff,
    DeadLetter,
    Envelope,
    Policy,
    Supervision,
    event,
    handle,
)


@event("demo.order.created")
class OrderCreated:
    order_id: str
    item: str
    amount: float


@event("demo.stock.reserved")
class StockReserved:
    order_id: str
    amount: float


@event("demo.payment.captured")
class PaymentCaptured:
    order_id: str
    amount: float


@event("demo.stock.query")
class StockQuery:
    item: str


class CardDeclinedError(Exception):
    """The (pretend) card gateway said no."""


class Inventory(Actor):
    """Keeps stock; one message at a time, so no lock is needed."""

    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = dict(stock)

    @handle()
    async def reserve(self, order: OrderCreated) -> None:
        left = self.stock.get(order.item, 0)
        if left == 0:
            print(f"  inventory: {order.item} is out of stock, order {order.order_id} waits")
            return
        self.stock[order.item] = left - 1
        print(f"  inventory: reserved {order.item} for {order.order_id} ({left - 1} left)")
        await self.publish(StockReserved(order.order_id, order.amount))

    @handle()
    async def query(self, query: StockQuery) -> int:
        return self.stock.get(query.item, 0)


class Billing(Actor):
    """Charges cards through a gateway that fails now and then."""

    supervision = Supervision(
        Policy.RETRY,
        max_retries=2,
        backoff=Backoff(initial=0.01, maximum=0.05),
        then=Policy.DEAD_LETTER,
    )

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    @handle()
    async def charge(self, reserved: StockReserved) -> None:
        tries = self.attempts[reserved.order_id] = self.attempts.get(reserved.order_id, 0) + 1
        if reserved.order_id == "o-3" and tries == 1:
            print(f"  billing: gateway timed out for {reserved.order_id} (try {tries}), retrying")
            raise CardDeclinedError(reserved.order_id)
        if reserved.order_id == "o-4":
            print(f"  billing: card declined for {reserved.order_id} (try {tries})")
            raise CardDeclinedError(reserved.order_id)
        print(f"  billing: captured {reserved.amount:.2f} for {reserved.order_id}")
        await self.publish(PaymentCaptured(reserved.order_id, reserved.amount))


class Audit(Actor):
    """Sees every demo event by glob, and every dead letter."""

    def __init__(self) -> None:
        self.seen = 0
        self.last = ""

    @handle("demo.*")
    async def record(self, envelope: Envelope) -> None:
        self.seen += 1
        self.last = envelope.id

    @handle()
    async def dead(self, letter: DeadLetter) -> None:
        print(f"  audit: dead letter {letter.envelope.type} for {letter.actor!r}: {letter.error!r}")


async def run_demo() -> None:
    """Run the shop, print what happens, and a summary."""
    print("actorbus demo: orders -> inventory -> billing, on the embedded default (no Redis)")
    async with ActorSystem("demo-shop") as system:
        inventory = await system.spawn(Inventory, {"book": 3, "lamp": 1})
        await system.spawn(Billing)
        audit = await system.spawn(Audit)
        orders = [
            OrderCreated("o-1", "book", 12.5),
            OrderCreated("o-2", "lamp", 30.0),
            OrderCreated("o-3", "book", 12.5),
            OrderCreated("o-4", "book", 12.5),
            OrderCreated("o-5", "lamp", 30.0),
        ]
        for order in orders:
            print(f"publish {order.order_id}: {order.item} for {order.amount:.2f}")
            await system.publish(order)
            await system.drain()
        books = await inventory.ask(StockQuery("book"))
        print(f"ask inventory: {books} book(s) left")
        print("summary:")
        for name, stats in system.stats().items():
            print(
                f"  {name:<10} processed={stats.processed:<3} failed={stats.failed:<2} "
                f"retries={stats.retries:<2} dead_lettered={stats.dead_lettered}"
            )
        print(
            f"  audit saw {audit.stats.processed} events; {len(system.dead_letters)} dead letter(s)"
        )
    print("system stopped cleanly")
