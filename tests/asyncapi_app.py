"""An application that uses every feature the AsyncAPI document describes.

Groups and broadcast, globs, request/reply, APP and PROCESS events, ad-hoc events, nested
and recursive attrs classes, enums, optionals, dataclasses, fields that have no exact
JSON Schema, keyed events, partitions and an entity kind with durable state. Its systems
are built, never started (`actorbus asyncapi` reads them).
Loaded with `runpy.run_path` by the tests (fresh `@event` registrations in each test's
isolated registry) and imported by the command line tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt  # noqa: TC003 - annotations are resolved at run time
import enum
from typing import Literal

import attrs

from actorbus import (
    Actor,
    ActorSystem,
    DeadLetter,
    Envelope,
    Router,
    Scope,
    Sharding,
    event,
    handle,
)
from actorbus.redis import RedisTransport
from actorbus.testing import MemoryTransport


class Status(enum.Enum):
    """Where an order is."""

    NEW = "new"
    PAID = "paid"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Line:
    """One line of an order.

    Attributes:
        sku: The article.
        quantity: How many.
    """

    sku: str
    quantity: int = 1


@attrs.frozen
class Category:
    """A tree of categories: a class that contains itself."""

    name: str
    children: list[Category] = attrs.field(factory=list)


@event("shop.order.placed", scope=Scope.APP)
class OrderPlaced:
    """An order was placed.

    Attributes:
        order_id: The order's id.
        lines: What was ordered.
    """

    order_id: str
    lines: list[Line]
    total: float
    status: Status = Status.NEW
    priority: Priority = Priority.LOW
    note: str | None = None
    placed_at: dt.datetime | None = None
    tags: dict[str, int] = attrs.field(factory=dict)
    category: Category | None = None
    channel: Literal["web", "shop"] = "web"
    codes: tuple[int, str] = (0, "")
    checksum: str = attrs.field(init=False, default="")  # never written: not described


@event("shop.stock.query", scope=Scope.APP)
@dataclasses.dataclass(frozen=True)
class GetStock:
    """How many of an article are in stock?"""

    sku: str
    warehouses: list[str] = dataclasses.field(default_factory=list)


@attrs.frozen
class Stock:
    sku: str
    count: int


@event("shop.payment.settled", scope=Scope.APP)
class PaymentSettled:
    order_id: str
    amount: float


@event("shop.clock.tick")
class Tick:
    """A local timer tick (PROCESS scope)."""

    count: int


@event("shop.odd.shapes")
class OddShapes:
    """Fields the converter has no exact JSON form for."""

    labels: set[str]
    blob: bytes
    day: dt.date
    either: int | str


class LocalNote:
    """A plain class published in the process (no @event)."""

    def __init__(self, text: str) -> None:
        self.text = text


class Inventory(Actor):
    """Keeps the stock."""

    group = "inventory"

    @handle()
    async def reserve(self, order: OrderPlaced) -> None:
        """Reserve the stock of an order."""

    @handle()
    async def stock(self, query: GetStock) -> Stock:
        """Answer stock queries."""
        return Stock(query.sku, 1)

    @handle("shop.payment.*", group="ledger")
    def settle(self, envelope: Envelope) -> None:
        """Book payments (a sync handler, in its own group)."""


class Audit(Actor):
    """Sees everything (broadcast)."""

    @handle("shop.*")
    async def everything(self, envelope: Envelope) -> None: ...

    @handle(DeadLetter)
    async def dead(self, letter: DeadLetter) -> None: ...

    @handle(LocalNote)
    async def note(self, note: LocalNote) -> None: ...

    @handle()
    async def count(self, tick: Tick) -> int:
        return tick.count


@handle(PaymentSettled, group="mailers")
async def mail_receipt(payment: PaymentSettled) -> None:
    """Mail a receipt (a function actor, in a group)."""


router = Router()


@router.on("payment.processed")
def record_payment(payment_id, status, amount) -> None:  # an ad-hoc event's arguments
    """Record a payment emitted ad hoc."""


@router.on(OddShapes, Tick, group="local-workers")
async def odd(event: OddShapes | Tick) -> None: ...


@event("cart.item_added", scope=Scope.APP, key="cart_id")
class ItemAdded:
    """An article was put in a cart (keyed by the cart)."""

    cart_id: str
    sku: str


@event("cart.query", scope=Scope.APP)
class GetCart:
    """What is in the cart? (sent with `system.entity(Cart, cart_id).ask`)"""


@attrs.define
class CartState:
    """The articles of one cart."""

    skus: list[str] = attrs.field(factory=list)


class Cart(Actor):
    """One shopping cart per cart id: an entity kind with durable state."""

    sharding = Sharding(state=CartState, passivate_after=600.0)

    @handle()
    async def add(self, item: ItemAdded) -> None:
        """Put the article in the cart."""

    @handle()
    async def contents(self, query: GetCart) -> CartState:
        """Answer with the cart's articles."""
        return CartState()


ACTORS = [Inventory, Audit, mail_receipt]
URL = "redis://shop-worker:s3cret-pw@127.0.0.1:1/3"  # port 1: nothing listens there


def redis_system() -> ActorSystem:
    return ActorSystem("shop", transport=RedisTransport(URL), actors=ACTORS, routers=[router])


def local_system() -> ActorSystem:
    return ActorSystem("shop", actors=ACTORS, routers=[router])


def memory_system() -> ActorSystem:
    return ActorSystem("shop", transport=MemoryTransport(), actors=ACTORS, routers=[router])


def tls_system() -> ActorSystem:
    transport = RedisTransport("rediss://redis.internal:6380/0", prefix="blue")
    return ActorSystem("shop", transport=transport, actors=ACTORS, routers=[router])


def partitioned_system() -> ActorSystem:
    transport = RedisTransport(URL, partitions=4, lease=6.0)
    return ActorSystem("shop", transport=transport, actors=[*ACTORS, Cart], routers=[router])


def local_entities_system() -> ActorSystem:
    return ActorSystem("shop", actors=[*ACTORS, Cart], routers=[router])


system = redis_system()
