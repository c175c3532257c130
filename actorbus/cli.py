"""The ``actorbus`` command line: run, handlers, asyncapi, dashboard, top and demo."""

from __future__ import annotations

import contextlib
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
_token_option = click.option(
    "--dashboard-token",
    "token",
    metavar="TOKEN",
    envvar="ACTORBUS_DASHBOARD_TOKEN",
    help=(
        "Require TOKEN on every request of the dashboard. Default: "
        "$ACTORBUS_DASHBOARD_TOKEN (which keeps it out of the process list)."
    ),
)


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
@click.option(
    "--dashboard",
    metavar="[HOST:]PORT",
    default=None,
    help=(
        "Serve a live, read-only web page of this process on PORT (host 127.0.0.1 unless "
        "given). With --workers, worker i serves its own on PORT+i."
    ),
)
@_token_option
@click.option(
    "--report-every",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    default=1.0,
    show_default=True,
    help=(
        "With a Redis transport, report this instance's status to Redis this often, for "
        "'actorbus dashboard' and 'actorbus top'; 0: never. Also the page's refresh period."
    ),
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
    dashboard: str | None,
    token: str | None,
    report_every: float,
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
      actorbus run myapp.workers:system --dashboard 8000
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = _backend_options(backend, use_uvloop=use_uvloop)
    if dashboard is not None:
        _check_listen(dashboard, "--dashboard")
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
            dashboard=dashboard,
            dashboard_token=token,
            report_every=report_every,
        )
        _run_pool(config)
        return
    transport = None
    if redis_url is not None:
        transport = _redis_factory(redis_url, instance)
    elif instance is not None:
        msg = "--instance only applies with --redis"
        raise click.UsageError(msg)

    from .dashboard._observe import for_worker  # noqa: PLC0415 - only `run` needs it

    sock = None if dashboard is None else _listen(dashboard, "--dashboard")
    watch = for_worker(sock, token=token, every=report_every or 1.0, report=report_every > 0)

    async def go() -> None:
        await run_worker(
            target,
            transport=transport,
            status_every=status_every,
            on_status=lambda line: click.echo(line, err=True),
            while_running=watch,
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


def _check_listen(value: str, option: str) -> None:
    from .dashboard._address import parse_listen  # noqa: PLC0415 - only the dashboard

    try:
        parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None


def _listen(value: str, option: str) -> Any:
    """A listening socket for ``[HOST:]PORT`` (a usage error when it cannot be bound)."""
    from .dashboard._address import listen  # noqa: PLC0415 - only the dashboard

    try:
        return listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None


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


@main.command(name="dashboard")
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    envvar="ACTORBUS_REDIS_URL",
    required=True,
    help="The Redis the instances report to. Default: $ACTORBUS_REDIS_URL.",
)
@click.option("--app", "app", metavar="NAME", required=True, help="The application's name.")
@click.option(
    "--listen",
    metavar="[HOST:]PORT",
    default="127.0.0.1:8000",
    show_default=True,
    help="Where to serve the page (a non-loopback address prints a warning).",
)
@_token_option
@click.option("--prefix", default="actorbus", show_default=True, help="The transport's prefix.")
@_backend_option
@click.option("--log-level", type=_LEVELS, default="INFO", show_default=True)
def dashboard_command(
    redis_url: str,
    app: str,
    listen: str,
    token: str | None,
    prefix: str,
    backend: str,
    log_level: str,
) -> None:
    """Serve a live, read-only page of every instance of application NAME, from Redis.

    Each instance run by 'actorbus run' with a Redis transport reports its status to
    Redis every second (--report-every); this page shows the instances reporting now,
    with the application's streams read from Redis.

    \b
    Examples:
      actorbus dashboard --redis redis://localhost:6379/0 --app shop
      ACTORBUS_DASHBOARD_TOKEN=s3cret actorbus dashboard --app shop --listen 0.0.0.0:8000
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from .dashboard._observe import watch_redis  # noqa: PLC0415 - only this command

    _check_redis_url(redis_url)
    sock = _listen(listen, "--listen")
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(
            _until_signalled,
            lambda: watch_redis(redis_url, app, listen=sock, token=token, prefix=prefix),
            backend=backend,
            backend_options=_backend_options(backend, use_uvloop=False),
        )


@main.command()
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    envvar="ACTORBUS_REDIS_URL",
    default=None,
    help="Read the instances' reports from this Redis (with --app).",
)
@click.option("--app", "app", metavar="NAME", default=None, help="The application's name.")
@click.option(
    "--url",
    "url",
    metavar="URL",
    default=None,
    help="Read a running dashboard instead (http://HOST:PORT of --dashboard).",
)
@click.option(
    "--dashboard-token",
    "token",
    metavar="TOKEN",
    envvar="ACTORBUS_DASHBOARD_TOKEN",
    help="The dashboard's token, for --url. Default: $ACTORBUS_DASHBOARD_TOKEN.",
)
@click.option("--prefix", default="actorbus", show_default=True, help="The transport's prefix.")
@click.option(
    "--every",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Refresh period.",
)
def top(
    redis_url: str | None,
    app: str | None,
    url: str | None,
    token: str | None,
    prefix: str,
    every: float,
) -> None:
    """Show the live state of an application in the terminal (q quits, s sorts).

    Reads the instances' reports from Redis (--redis URL --app NAME), or one running
    dashboard (--url). Keys: q quit, s next sort column, r reverse the order, i next
    instance.

    \b
    Examples:
      actorbus top --redis redis://localhost:6379/0 --app shop
      actorbus top --url http://127.0.0.1:8000
    """
    from .dashboard._top import run_top  # noqa: PLC0415 - only this command

    if (url is None) == (redis_url is None) or (redis_url is not None and app is None):
        msg = "give either --redis URL with --app NAME, or --url of a running dashboard"
        raise click.UsageError(msg)
    if redis_url is not None:
        _check_redis_url(redis_url)
    try:
        anyio.run(
            lambda: run_top(
                redis_url=redis_url, app=app, url=url, token=token, prefix=prefix, every=every
            )
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _check_redis_url(url: str) -> None:
    try:
        from .redis._config import check_url  # noqa: PLC0415 - the optional extra
    except ImportError:
        msg = "--redis needs the Redis extra: pip install 'actorbus[redis]'"
        raise click.UsageError(msg) from None
    try:
        check_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--redis'") from None


async def _until_signalled(work: Any) -> None:
    """Run `work()` until SIGINT or SIGTERM."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tasks:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    tasks.cancel_scope.cancel()
                    return

            tasks.start_soon(stop_on_signal)
            await work()
            tasks.cancel_scope.cancel()


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
