"""The official AsyncAPI parser, run by Node.js, as a session fixture (`asyncapi_oracle`).

The npm packages are installed once into a cache directory (``$ACTORBUS_NODE_CACHE``, else
``~/.cache/actorbus/node``), pinned, so the suite validates against the same parser
everywhere. A missing Node.js or npm fails the tests that need them, with the command to
install them: these tests are never skipped.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

PACKAGES = ("@asyncapi/parser@3.6.6", "ajv@8.20.0", "ajv-formats@2.1.1", "js-yaml@4.3.2")
ORACLE = Path(__file__).with_name("asyncapi_oracle.cjs")
ANSWER_TIMEOUT = 120.0
MINIMUM_NODE = (18, 18)  # the parser's linter (@stoplight/spectral-core) needs it


def install_command() -> str:
    """How to install Node.js and npm on this machine."""
    if sys.platform == "darwin":
        return "brew install node"
    if shutil.which("apt-get"):
        return "sudo apt-get update && sudo apt-get install -y nodejs npm"
    return "your package manager's nodejs and npm packages (Node.js 18 or newer)"


def cache_dir(env: Mapping[str, str]) -> Path:
    """Where the pinned npm packages live."""
    base = env.get("ACTORBUS_NODE_CACHE") or str(Path.home() / ".cache" / "actorbus" / "node")
    name = "-".join(p.replace("@", "").replace("/", "-") for p in PACKAGES)
    return Path(base) / name


def ensure_packages(env: Mapping[str, str]) -> Path:
    """Install the pinned packages into the cache if missing; return their directory.

    Fails the calling test (never skips it) when Node.js or npm is missing or the
    installation does not work.
    """
    path = env.get("PATH", "")
    missing = [tool for tool in ("node", "npm") if shutil.which(tool, path=path) is None]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not on PATH: the AsyncAPI tests validate the generated "
            f"documents with the official parser (@asyncapi/parser). Install Node.js with: "
            f"{install_command()}",
            pytrace=False,
        )
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, env=dict(env), check=False
    ).stdout.strip()
    found = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if found < MINIMUM_NODE:
        pytest.fail(
            f"Node.js {version or '(unknown version)'} is too old for the AsyncAPI parser, "
            f"which needs {'.'.join(map(str, MINIMUM_NODE))} or newer: install a current "
            "Node.js (https://nodejs.org, or your distribution's nodejs package if recent)",
            pytrace=False,
        )
    target = cache_dir(env)
    if (target / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Install beside the cache and move it in place once complete, so an interrupted
    # installation never looks like a finished one.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    result = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(partial),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            *PACKAGES,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(env),
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        pytest.fail(
            f"npm could not install {' '.join(PACKAGES)} into {target} (needed to validate "
            f"AsyncAPI documents): {result.stderr.strip()[-2000:]}",
            pytrace=False,
        )
    try:
        partial.rename(target)
    except OSError:  # another session installed it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return target


class Oracle:
    """Talks to one ``node asyncapi_oracle.cjs`` process: one request, one answer."""

    def __init__(self, packages: Path) -> None:
        self._process = subprocess.Popen(
            ["node", str(ORACLE), str(packages)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], ANSWER_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        if not line:
            process.kill()
            _, errors = process.communicate()
            pytest.fail(f"the AsyncAPI oracle (node) did not answer: {errors[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer and "parse" in request:
            pytest.fail(f"the AsyncAPI parser failed: {answer['error']}")
        return answer

    def diagnostics(self, text: str) -> list[dict[str, str]]:
        """What the official parser reports about a document (JSON or YAML text)."""
        found: list[dict[str, str]] = self._ask({"parse": text})["diagnostics"]
        return found

    def read_yaml(self, text: str) -> Any:
        """What js-yaml reads from `text` (fails the test when it cannot)."""
        answer = self._ask({"yaml": text})
        if "error" in answer:
            pytest.fail(f"js-yaml cannot read the YAML: {answer['error']}\n{text[:2000]}")
        return answer["value"]

    def validate(self, document: dict[str, Any], pointer: str, data: object) -> list[str]:
        """The errors of `data` against the schema at `pointer` in `document` (ajv)."""
        answer = self._ask({"validate": {"document": document, "pointer": pointer, "data": data}})
        return [] if answer["valid"] else list(answer["errors"]) or ["invalid"]

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def asyncapi_oracle() -> Iterator[Oracle]:
    """The official AsyncAPI parser, ajv and js-yaml, in one Node.js process."""
    oracle = Oracle(ensure_packages(os.environ))
    try:
        yield oracle
    finally:
        oracle.close()
