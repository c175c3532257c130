"""The ``actorbus`` command line: ``run``, ``handlers``, ``asyncapi`` and ``demo``."""

from __future__ import annotations

import importlib.util
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any, cast

import anyio
import click

from ._pool import RESTART_WINDOW, Pool, PoolConfig, cpu_count
from ._pool_worker import host_instance
from ._version import __version__
from ._worker import TargetError, describe, describe_error, load_target, run_worker

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["main"]

_BACKENDS = click.Choice(["asyncio", "trio"])
_backend_option = click.option(
    "--backend",
    type=_BACKENDS,
    default="asyncio",
    show_default=True,
    help="The async backend to run on.",
)
_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


def _backend_options(backend: str, *, use_uvloop: bool) -> dict[str, Any]:
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        msg = "trio is not installed: pip install 'actorbus[trio]'"
        raise click.UsageError(msg)
    if not use_uvloop:
        return {}
    if backend != "asyncio":
        msg = "--uvloop only applies to --backend asyncio"
        raise click.UsageError(msg)
    if importlib.util.find_spec("uvloop") is None:
        msg = "uvloop is not installed: pip install 'actorbus[uvloop]'"
        raise click.UsageError(msg)
    return {"use_uvloop": True}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="actorbus")
def main() -> None:
    """actorbus: supervised actors and an event bus for asyncio and trio."""


@main.command()
@click.argument("target")
@_backend_option
@click.option("--uvloop", "use_uvloop", is_flag=True, help="Run asyncio on uvloop.")
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    envvar="ACTORBUS_REDIS_URL",
    help=(
        "Carry APP-scope events through Redis (for a system built without transport). "
        "Default: $ACTORBUS_REDIS_URL, which keeps a password out of the process list."
    ),
)
@click.option(
    "--instance",
    metavar="NAME",
    envvar="ACTORBUS_INSTANCE",
    help=(
        "Durable instance name with --redis: resume where it stopped after a restart. "
        "With --workers, the base of the workers' names NAME-0, NAME-1, ... "
        "Default: $ACTORBUS_INSTANCE."
    ),
)
@click.option("--log-level", type=_LEVELS, default="INFO", show_default=True)
@click.option(
    "--status",
    "status_every",
    type=float,
    metavar="SECONDS",
    default=None,
    help="Print per-actor throughput and mailbox depth every SECONDS.",
)
@click.option(
    "--workers",
    metavar="N|auto",
    default=None,
    help=(
        "Run N supervised worker processes of TARGET (auto: one per CPU this process may "
        "use); more than one needs a transport."
    ),
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help=f"With --workers: more worker restarts within {RESTART_WINDOW:.0f} s stop the pool.",
)
def run(
    target: str,
    backend: str,
    use_uvloop: bool,
    redis_url: str | None,
    instance: str | None,
    log_level: str,
    status_every: float | None,
    workers: str | None,
    max_restarts: int,
) -> None:
    """Run TARGET (module:attr — an ActorSystem or a factory returning one) as a worker.

    SIGINT or SIGTERM stops it gracefully (exit status 0); a second signal exits at once.
    A system that fails (an unhandled FAIL_FAST escalation) exits with status 1.

    With --workers N, a supervisor runs N worker processes of TARGET, each with the
    instance name <instance>-<i>, and restarts any that dies.

    \b
    Examples:
      actorbus run myapp.workers:system
      actorbus run myapp.workers:make_system --backend trio
      actorbus run myapp.workers:system --redis redis://localhost:6379/0 --instance w1
      actorbus run myapp.workers:system --redis redis://localhost:6379/0 --workers auto
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = _backend_options(backend, use_uvloop=use_uvloop)
    if workers is not None:
        config = PoolConfig(
            target=target,
            workers=_worker_count(workers),
            backend=backend,
            use_uvloop=use_uvloop,
            redis_url=redis_url,
            instance=instance,
            log_level=log_level,
            status_every=status_every,
            max_restarts=max_restarts,
        )
        _run_pool(config)
        return
    transport = None
    if redis_url is not None:
        transport = _redis_factory(redis_url, instance)
    elif instance is not None:
        msg = "--instance only applies with --redis"
        raise click.UsageError(msg)

    async def go() -> None:
        await run_worker(
            target,
            transport=transport,
            status_every=status_every,
            on_status=lambda line: click.echo(line, err=True),
        )

    try:
        anyio.run(go, backend=backend, backend_options=options)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    except BaseException as exc:  # report once, exit non-zero
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        click.echo(f"actorbus: the system failed: {describe_error(exc)}", err=True)
        sys.exit(1)


def _worker_count(value: str) -> int:
    if value == "auto":
        return cpu_count()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        msg = f"--workers takes a number >= 1 or 'auto', got {value!r}"
        raise click.BadParameter(msg, param_hint="'--workers'")
    return count


def _run_pool(config: PoolConfig) -> None:
    """Run a worker pool (the supervisor does not import the target); exit with its status."""
    if config.redis_url is not None:  # a bad URL or name is a usage error, before any worker
        _redis_factory(config.redis_url, f"{config.instance or host_instance()}-0")
    pool = Pool(config, out=lambda line: click.echo(line, err=True))
    status = anyio.run(pool.run, backend=config.backend)
    if pool.fatal is not None:
        raise click.ClickException(pool.fatal)
    for report in pool.reports:
        click.echo(f"actorbus: {report}", err=True)
    sys.exit(status)


def _redis_factory(url: str, instance: str | None) -> Any:
    try:
        from .redis import RedisTransport  # noqa: PLC0415 - the optional extra
    except ImportError:
        msg = "--redis needs the Redis extra: pip install 'actorbus[redis]'"
        raise click.UsageError(msg) from None
    try:
        transport = RedisTransport(url, instance=instance)  # checks the URL; connects later
    except ValueError as exc:  # a usage error (exit 2); the message hides passwords
        raise click.BadParameter(str(exc), param_hint="'--redis' / '--instance'") from None

    def build() -> Transport:
        return transport

    return build


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per handler).")
def handlers(target: str, as_json: bool) -> None:
    """List the actors, entity kinds, handlers and subscriptions of TARGET (module:attr).

    \b
    Examples:
      actorbus handlers myapp.workers:system
      actorbus handlers myapp.workers:system --json
    """
    try:
        system = anyio.run(load_target, target)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    rows = describe(system)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = [
        "actor",
        "handler",
        "subscriptions",
        "scope",
        "group",
        "mailbox",
        "supervision",
        "entity",
    ]
    table = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for line in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(no start-up actors or router functions)")


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in cast("list[object]", value))
    return "-" if value is None else str(value)


@main.command(name="asyncapi")
@click.argument("target")
@click.option("--yaml", "as_yaml", is_flag=True, help="Print YAML instead of JSON.")
@click.option(
    "--app-version",
    metavar="VERSION",
    default="unversioned",
    show_default=True,
    help="The application's version (the document's info.version).",
)
def asyncapi_command(target: str, as_yaml: bool, app_version: str) -> None:
    """Print an AsyncAPI 3.0 document of TARGET (module:attr) on standard output.

    It is read from the system's start-up actors and routers, its @event types and its
    transport's settings: nothing is started and nothing is connected.

    \b
    Examples:
      actorbus asyncapi myapp.workers:system > asyncapi.json
      actorbus asyncapi myapp.workers:make_system --yaml --app-version 1.4.0
    """
    from ._asyncapi import asyncapi  # noqa: PLC0415 - only this command needs it
    from ._yaml import to_yaml  # noqa: PLC0415

    try:
        system = anyio.run(load_target, target)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    document = asyncapi(system, version=app_version)
    click.echo(to_yaml(document) if as_yaml else json.dumps(document, indent=2), nl=not as_yaml)


@main.command()
@_backend_option
def demo(backend: str) -> None:
    """Run a self-contained demo (no infrastructure needed).

    \b
    Examples:
      actorbus demo
      actorbus demo --backend trio   # needs trio: pip install 'actorbus[trio]'
    """
    from ._demo import run_demo  # noqa: PLC0415 - only the demo needs it

    if hasattr(signal, "SIGPIPE"):
        # Like other command-line tools, end quietly when the reader goes (`| head`) instead
        # of failing in every handler that prints.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # The demo prints its own story; library logs below ERROR would repeat it.
    logging.basicConfig(level=logging.ERROR, format="  log: %(levelname)s %(name)s: %(message)s")
    anyio.run(
        run_demo, backend=backend, backend_options=_backend_options(backend, use_uvloop=False)
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
