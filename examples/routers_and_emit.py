"""Function subscribers: a Router, system.on, emit with positional arguments, and the
@publish_result / @publish_call decorators.

Each subscribed function becomes its own actor (own mailbox, own supervision). Sync
functions run in a worker thread, so they may block without stalling other actors.

Run it with ``python examples/routers_and_emit.py`` (add ``--backend trio`` for trio, with the
trio extra installed: ``pip install -e '.[trio]'``).
"""

from __future__ import annotations

import argparse

import anyio

from actorbus import ActorSystem, Envelope, Router, event, publish_call, publish_result


@event("shop.order.created")
class OrderCreated:
    order_id: str
    amount: float


@event("shop.invoice.issued")
class InvoiceIssued:
    order_id: str
    total: float


router = Router()  # just a list of functions; nothing is global


@router.on(OrderCreated)  # by class (isinstance)
async def confirm(order: OrderCreated) -> None:
    print(f"confirm: order {order.order_id} for {order.amount:.2f}")


@router.on("payment.processed")  # an ad-hoc type: no class needed
def record_payment(payment_id, status, amount) -> None:
    # Unannotated parameters: called as record_payment(*args, **kwargs) of the emit.
    # (Annotated parameters would ask for an event object instead.)
    # A sync function, so it runs in a worker thread.
    print(f"payments: {payment_id} {status} {amount:.2f}")


@router.on("user.*")  # a glob; a parameter annotated Envelope gets the envelope
async def audit(envelope: Envelope) -> None:
    print(f"audit: {envelope.type} [{envelope.subject}] {envelope.data}")


@router.on("user.signed_up")
def welcome(email, plan, result=None) -> None:
    # @publish_call passes the bound arguments by name (and `result` after the call).
    if result is not None:
        print(f"welcome: mail {email} about their {plan} plan (account {result})")


@router.on(InvoiceIssued)
async def mail_invoice(invoice: InvoiceIssued) -> None:
    print(f"mailer: invoice for {invoice.order_id}, total {invoice.total:.2f}")


@publish_result(InvoiceIssued)  # the returned mapping becomes InvoiceIssued(**result)
async def issue_invoice(order_id: str, amount: float, tax_rate: float) -> dict[str, object]:
    return {"order_id": order_id, "total": round(amount * (1 + tax_rate), 2)}


@publish_result("report.ready", condition=lambda lines: len(lines) > 0)
async def daily_report(orders: list[str]) -> list[str]:
    return [f"order {order_id}" for order_id in orders]


@publish_call("user.signed_up", timing="both")  # publishes the bound arguments (and result)
async def sign_up(email: str, plan: str = "free") -> str:
    print(f"sign_up: creating a {plan} account for {email}")
    return "user-" + email.partition("@")[0]


async def main() -> None:
    async with ActorSystem("routers", routers=[router]) as system:

        @system.on("report.ready")  # bind one more function while running
        def show_report(lines) -> None:  # unannotated: gets emit's positional argument
            print(f"report: {len(lines)} line(s): {', '.join(lines)}")

        print("-- publish an event instance")
        await system.publish(OrderCreated("o-1", 20.0))
        await system.drain()

        print("-- emit a registered type: the arguments build the class")
        await system.emit("shop.order.created", "o-2", 35.5)
        await system.drain()

        print("-- emit an ad-hoc type with positional arguments")
        await system.emit("payment.processed", "p-1", "success", 99.99)
        await system.drain()

        print("-- @publish_result: the return value is published")
        await issue_invoice("o-1", 20.0, tax_rate=0.2)
        await daily_report(["o-1", "o-2"])
        await daily_report([])  # the condition is false: nothing is published
        await system.drain()

        print("-- @publish_call: the call is published before and after")
        user_id = await sign_up("ada@example.com", plan="pro")
        await system.drain()
        print(f"main: sign_up returned {user_id}")
    print("main: system stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    anyio.run(main, backend=parser.parse_args().backend)
