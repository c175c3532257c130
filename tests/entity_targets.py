"""A target for `actorbus handlers` with an entity kind (see test_entities.py)."""

import attrs

from actorbus import Actor, ActorSystem, Scope, Sharding, event, handle


@event("targets.entity.deposited", scope=Scope.APP, key="account")
class Deposited:
    account: str
    amount: int


@attrs.define
class Balance:
    amount: int = 0


class Account(Actor):
    sharding = Sharding(state=Balance, passivate_after=30.0)

    @handle()
    async def deposit(self, event: Deposited) -> None:
        self.state.amount += event.amount


class Auditor(Actor):
    @handle()
    async def audit(self, event: Deposited) -> None:
        pass


system = ActorSystem("bank", actors=[Account, Auditor])
