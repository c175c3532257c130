"""Bank: each account an entity, one live instance per account, with a durable balance.

Run it with ``python examples/bank.py`` (add ``--backend trio`` for trio, with the trio
extra installed: ``pip install -e '.[trio]'``).

`Account` is an entity kind: the system builds the entity of an account the first time
a message for it arrives, gives it its last committed `Balance` as ``self.state``, and
commits the balance after each message it handled. A message that fails changes
nothing: the balance goes back to its last commit. Idle accounts are stopped, and built
again with their balance when a message comes. Here the balances live in memory; with
a transport that keeps durable state, the same code runs on many processes, each
account live in exactly one of them, its balance saved with each message's
acknowledgement (see the guide "Entities: stateful actors across processes").
"""

from __future__ import annotations

import argparse

import anyio
import attrs

from actorbus import (
    Actor,
    ActorSystem,
    Policy,
    Scope,
    Sharding,
    Supervision,
    event,
    handle,
)


@event("bank.deposited", scope=Scope.APP, key="account")  # the key: which account
class Deposited:
    account: str
    amount: int


@event("bank.withdraw", scope=Scope.APP, key="account")
class Withdraw:
    account: str
    amount: int


@event("bank.transfer", scope=Scope.APP, key="source")
class Transfer:
    transfer: str  # the transfer's id: its credit is applied once, however often sent
    source: str
    target: str
    amount: int


@event("bank.credit", scope=Scope.APP, key="account")
class Credit:
    account: str
    transfer: str
    amount: int


@event("bank.balance", scope=Scope.APP)
class GetBalance:
    pass


@attrs.define
class Balance:
    """An account's durable state: saved after each message, loaded when it is built."""

    amount: int = 0
    credited: list[str] = attrs.Factory(list)  # the transfers already credited


class InsufficientFundsError(Exception):
    """A withdrawal or transfer larger than the balance."""


class Account(Actor):
    sharding = Sharding(state=Balance, passivate_after=0.2)
    # A refused payment is dead-lettered (and its changes to the balance discarded).
    supervision = Supervision(on={InsufficientFundsError: Policy.DEAD_LETTER})

    async def on_start(self) -> None:
        print(f"{self.key}: built with {self.state.amount}")

    async def on_stop(self) -> None:
        print(f"{self.key}: stopped with {self.state.amount}")

    @handle()
    async def deposit(self, event: Deposited) -> None:
        self.state.amount += event.amount

    @handle()
    async def withdraw(self, command: Withdraw) -> int:
        self.state.amount -= command.amount
        if self.state.amount < 0:  # raised after the change: the change is discarded
            msg = f"{self.key} cannot pay {command.amount}"
            raise InsufficientFundsError(msg)
        return self.state.amount

    @handle()
    async def transfer(self, command: Transfer) -> None:
        if command.amount > self.state.amount:
            msg = f"{self.key} cannot transfer {command.amount}"
            raise InsufficientFundsError(msg)
        self.state.amount -= command.amount
        # An effect outside this entity's state happens at least once (after a crash, the
        # message is handled again from the last commit), so the credit carries the
        # transfer's id and the target applies it once.
        target = self.system.entity(Account, command.target)
        await target.tell(Credit(command.target, command.transfer, command.amount))

    @handle()
    async def credit(self, command: Credit) -> None:
        if command.transfer in self.state.credited:
            print(f"{self.key}: transfer {command.transfer} already credited")
            return
        self.state.credited.append(command.transfer)
        self.state.amount += command.amount

    @handle()
    async def balance(self, _query: GetBalance) -> int:
        return self.state.amount


async def main() -> None:
    async with ActorSystem("bank", actors=[Account]) as system:  # hosts the kind
        for account, amount in (("alice", 100), ("bob", 20), ("alice", 30)):
            await system.publish(Deposited(account, amount))  # reaches its account
        alice, bob = system.entity(Account, "alice"), system.entity(Account, "bob")
        print(f"main: alice has {await alice.ask(GetBalance())}")
        try:
            await bob.ask(Withdraw("bob", 50))
        except InsufficientFundsError as exc:
            print(f"main: refused: {exc}")
        print(f"main: bob still has {await bob.ask(GetBalance())}")
        await alice.tell(Transfer("t-1", "alice", "bob", 60))
        await bob.tell(Credit("bob", "t-1", 60))  # the same credit again: applied once
        await system.drain()
        print(f"main: alice has {await alice.ask(GetBalance())}, bob {await bob.ask(GetBalance())}")
        shard = await system.shard(Account)
        print(f"main: {len(shard.entities)} accounts live")
        with anyio.fail_after(10):  # idle for passivate_after: both are stopped
            while shard.stats.passivations < 2:  # noqa: ASYNC110 - an example, kept plain
                await anyio.sleep(0.05)
        print(f"main: {len(shard.entities)} accounts live")
        print(f"main: alice has {await alice.ask(GetBalance())}")  # built again, same balance
        stats = system.stats()["Account"]
        print(
            f"main: {stats.activations} activations, {stats.passivations} passivations, "
            f"{stats.processed} messages, {stats.dead_lettered} dead-lettered"
        )
    print("main: system stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    anyio.run(main, backend=parser.parse_args().backend)
