"""The one entry point for actorbus's tests, lint, type checks, docs and benchmarks.

Run `nox` for the default sessions, `nox -l` to list them, `nox -s tests -- -k mailbox` to
pass arguments through to the tool a session runs.
"""

from __future__ import annotations

import os
import shutil
import sys

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
# The stdlib venv is always there; uv and virtualenv are not guaranteed.
nox.options.default_venv_backend = "venv"
# Reuse environments between local runs: the project is installed editable and every session
# re-runs its installs, so only a removed dependency can linger (use `nox -N` to rebuild).
# CI starts from a fresh checkout, so it always builds them from scratch.
nox.options.reuse_venv = "yes"

# Checkers are pinned: with ruff's `select = ["ALL"]` and strict mypy/pyright, every new
# release can add findings, and CI must not break on a day nobody changed the code.
# Bump these on purpose, together with the fixes they ask for.
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"
# The `nodejs` extra brings Node.js as a PyPI wheel instead of downloading it from nodejs.org.
PYRIGHT = "pyright[nodejs]==1.1.414"
IMPORT_LINTER = "import-linter==2.17"

LINT_PATHS = ["actorbus", "tests", "examples", "benchmarks", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite once; the `anyio_backend` fixture covers asyncio and trio."""
    session.install("-e", ".[dev]")
    _ensure_redis_server(session)
    _ensure_node(session)
    _ensure_chromium(session)
    # Exit status 5 ("no tests collected") must fail the session, so a broken collection
    # can never pass as green. nox's default `success_codes` is [0]: keep it that way.
    session.run("pytest", *session.posargs)


def _ensure_redis_server(session: nox.Session) -> None:
    """Make `redis-server` available: the `redis` tests start a real one on a free port."""
    if shutil.which("redis-server"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", external=True, env=env)
        session.run("apt-get", "install", "-y", "redis-server", external=True, env=env)
        if shutil.which("redis-server"):
            return
        session.error("apt-get installed redis-server, but it is still not on PATH.")
    if sys.platform == "darwin":
        command = "brew install redis"
    elif shutil.which("apt-get"):
        command = "sudo apt-get update && sudo apt-get install -y redis-server"
    else:
        command = "your package manager's Redis (7 or newer) package"
    session.error(
        f"redis-server is not on PATH; the redis tests need it. Install it with: {command}"
    )


def _ensure_node(session: nox.Session) -> None:
    """Make `node` and `npm` available: the AsyncAPI tests run the official parser with them.

    The tests install the parser itself (pinned, into a cache directory) when it is missing.
    """
    if shutil.which("node") and shutil.which("npm"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", external=True, env=env)
        session.run("apt-get", "install", "-y", "nodejs", "npm", external=True, env=env)
        if shutil.which("node") and shutil.which("npm"):
            return
        session.error("apt-get installed nodejs and npm, but they are still not on PATH.")
    if sys.platform == "darwin":
        command = "brew install node"
    elif shutil.which("apt-get"):
        command = "sudo apt-get update && sudo apt-get install -y nodejs npm"
    else:
        command = "your package manager's nodejs and npm packages (Node.js 18.18 or newer)"
    session.error(
        f"node and npm are not on PATH; the AsyncAPI tests need them. Install them with: {command}"
    )


def _ensure_chromium(session: nox.Session) -> None:
    """Make Debian's Chromium available: playwright drives it in the dashboard's browser tests.

    Never `playwright install`: the tests use the system's browser (/usr/bin/chromium).
    """
    if shutil.which("chromium"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", external=True, env=env)
        session.run("apt-get", "install", "-y", "chromium", external=True, env=env)
        if shutil.which("chromium"):
            return
        session.error("apt-get installed chromium, but it is still not on PATH.")
    command = (
        "sudo apt-get update && sudo apt-get install -y chromium"
        if shutil.which("apt-get")
        else "your package manager's Chromium (at /usr/bin/chromium)"
    )
    session.error(f"chromium is not on PATH; the dashboard's browser tests need it: {command}")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting (ruff) and the package's layers (import-linter)."""
    session.install(RUFF, IMPORT_LINTER, "-e", ".")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)
    # The layer contracts in pyproject.toml: no import cycles, `redis/` above the core.
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy --strict and pyright (strict), then report coverage."""
    # The extras are needed so the checkers see the real trio, hiredis and fastapi types.
    session.install("-e", ".[dev]", MYPY, PYRIGHT)
    session.run("mypy")  # strict mode and the `actorbus` target come from pyproject.toml
    session.run("pyright")
    # The public API is fully typed (STYLE.md asks for 100 %): any gap fails the session.
    session.run("pyright", "--verifytypes", "actorbus", "--ignoreexternal")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation; every warning is an error."""
    # mkdocstrings reads the source statically (paths: [.] in mkdocs.yml), so the package
    # itself need not be installed. Ruff formats the separate signatures.
    session.install("mkdocs-material", "mkdocstrings[python]", RUFF)
    # Material prints a banner about its successor on every build; it is not a warning.
    env = {"NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", *session.posargs, env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks (not a default session: numbers need a quiet machine)."""
    # redis-py is only a baseline of the Redis benchmark, never a dependency of the library.
    session.install("-e", ".[dev,uvloop]", "-r", "benchmarks/requirements-bench.txt")
    session.run("python", "benchmarks/run.py", *session.posargs)
