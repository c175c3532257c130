"""Quickstart: one actor, a few events, a question, and a clean shutdown.

Run it with ``python examples/quickstart.py`` (add ``--backend trio`` for trio, with the
trio extra installed: ``pip install -e '.[trio]'``).
"""

from __future__ import annotations

import argparse

import anyio

from actorbus import Actor, ActorSystem, Envelope, event, handle


@event("shop.order.created")
class OrderCreated:
    order_id: str
    item: str


@event("shop.order.cancelled")
class OrderCancelled:
    order_id: str
    item: str


@event("shop.stock.query")
class StockQuery:
    item: str


class Inventory(Actor):
    """Keeps a stock count. It handles one message at a time, so it needs no lock."""

    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = dict(stock)

    async def on_start(self) -> None:
        print(f"{self.name}: started with {self.stock}")

    @handle()  # no argument: the annotation `OrderCreated` decides what this handles
    async def reserve(self, order: OrderCreated) -> None:
        self.stock[order.item] -= 1
        print(f"{self.name}: reserved one {order.item} for {order.order_id}")

    @handle(OrderCancelled)  # or name the class explicitly
    async def release(self, order: OrderCancelled) -> None:
        self.stock[order.item] += 1
        print(f"{self.name}: released one {order.item} from {order.order_id}")

    @handle("shop.order.*")  # a glob over the event type; this one wants the envelope
    async def audit(self, envelope: Envelope) -> None:
        print(f"{self.name}: saw {envelope.type} from {envelope.source!r}")

    @handle()
    async def count(self, query: StockQuery) -> int:  # the return value answers `ask`
        return self.stock.get(query.item, 0)

    async def on_stop(self) -> None:
        print(f"{self.name}: stopping with {self.stock}")


async def main() -> None:
    async with ActorSystem("quickstart") as system:
        inventory = await system.spawn(Inventory, {"book": 3}, name="inventory")
        await system.publish(OrderCreated("o-1", "book"))
        await system.publish(OrderCreated("o-2", "book"))
        await system.publish(OrderCancelled("o-1", "book"))
        left = await inventory.ask(StockQuery("book"), timeout=1.0)
        print(f"main: {left} book(s) left")
        await system.drain()  # every mailbox empty, every handler idle
        print(f"main: inventory handled {inventory.stats.processed} messages")
    print("main: system stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    anyio.run(main, backend=parser.parse_args().backend)
