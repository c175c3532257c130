"""The ``actorbus`` command line: ``demo`` (more commands come with the worker runtime)."""

from __future__ import annotations

import logging
import sys

import anyio
import click

from . import __version__

__all__ = ["main"]

_BACKENDS = click.Choice(["asyncio", "trio"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="actorbus")
def main() -> None:
    """actorbus: supervised actors and an event bus for asyncio and trio."""


@main.command()
@click.option(
    "--backend",
    type=_BACKENDS,
    default="asyncio",
    show_default=True,
    help="The async backend to run on.",
)
def demo(backend: str) -> None:
    r"""Run a self-contained demo (no infrastructure needed).

    \b
    Examples:
      actorbus demo
      actorbus demo --backend trio
    """
    from ._demo import run_demo  # noqa: PLC0415 - only the demo needs it

    # The demo prints its own story; library logs below ERROR would repeat it.
    logging.basicConfig(level=logging.ERROR, format="  log: %(levelname)s %(name)s: %(message)s")
    anyio.run(run_demo, backend=backend)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
