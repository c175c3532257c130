"""A FastAPI app whose routes publish events to actors and ask them questions.

The actor system starts with the app and stops gracefully with it. Run it with an ASGI
server (not installed by actorbus)::

    pip install 'actorbus[fastapi]' uvicorn
    uvicorn examples.fastapi_app:app            # asyncio

    curl -X POST localhost:8000/orders -H 'content-type: application/json' \\
         -d '{"order_id": "o-1", "item": "book"}'
    curl localhost:8000/stock/book

On trio, use hypercorn: ``hypercorn -k trio examples.fastapi_app:app``.
"""

from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from actorbus import Actor, ActorSystem, event, handle
from actorbus.contrib.fastapi import get_system, lifespan


@event("api.order.placed")
class OrderPlaced:
    order_id: str
    item: str


@event("api.stock.query")
class StockQuery:
    item: str


class Inventory(Actor):
    """Owns the stock; one message at a time, so no lock."""

    def __init__(self) -> None:
        self.stock = {"book": 3, "lamp": 1}

    async def on_start(self) -> None:
        print(f"inventory: open with {self.stock}")

    async def on_stop(self) -> None:
        print(f"inventory: closing with {self.stock}")

    @handle()
    async def reserve(self, order: OrderPlaced) -> None:
        if self.stock.get(order.item, 0) > 0:
            self.stock[order.item] -= 1
            print(f"inventory: reserved one {order.item} for {order.order_id}")
        else:
            print(f"inventory: no {order.item} left for {order.order_id}")

    @handle()
    async def available(self, query: StockQuery) -> int:
        return self.stock.get(query.item, 0)


def build_system() -> ActorSystem:
    """A fresh system for each start of the app (a system can be entered only once)."""
    return ActorSystem("shop-api", actors=[Inventory], shutdown_timeout=5)


app = FastAPI(title="actorbus shop", lifespan=lifespan(build_system))
System = Annotated[ActorSystem, Depends(get_system)]


class Order(BaseModel):
    order_id: str
    item: str


@app.post("/orders", status_code=202)
async def place_order(order: Order, system: System) -> dict[str, str]:
    """Publish the order; the inventory actor reserves the item in the background."""
    envelope = await system.publish(OrderPlaced(order.order_id, order.item))
    return {"event_id": envelope.id}


@app.get("/stock/{item}")
async def stock(item: str, system: System) -> dict[str, object]:
    """Ask the inventory actor; its answer comes after every order queued before."""
    available = await system.actor("Inventory").ask(StockQuery(item), timeout=2)
    return {"item": item, "available": available}
