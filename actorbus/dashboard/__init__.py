"""A live, read-only view of running applications: a web page and ``actorbus top``.

``actorbus run ... --dashboard [HOST:]PORT`` serves the page of one process; ``actorbus
dashboard --redis URL --app NAME`` the page of every instance of an application, from
what the instances report to Redis; ``actorbus top`` shows the same in a terminal. An
application that runs its system itself starts `observe` in a task group of its own::

    async with ActorSystem("shop", actors=[Inventory]) as system:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(partial(observe, system, listen=listen("127.0.0.1:8000")))
            ...

The page needs the ``dashboard`` extra (``pip install 'actorbus[dashboard]'``: Starlette
and Hypercorn); reporting to Redis and `observe` without a page need nothing more. See
the guide "Looking inside a running application".
"""

from actorbus._public import expose
from actorbus.dashboard._address import listen
from actorbus.dashboard._observe import observe

__all__ = ["listen", "observe"]

expose(globals(), __all__, __name__)
