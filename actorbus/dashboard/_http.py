"""The dashboard's web application (Starlette): the page, its data, its live updates.

Read-only by construction: every route answers GET only (any other method is 405 before
routing), and nothing reachable changes the application. The page is static (HTML, CSS
and JavaScript shipped in the package: no build step, no CDN); its data comes as JSON
(``/api/state``) and as server-sent events (``/api/events``), and the script puts every
value in the page as text (``textContent``), never as markup. A Content-Security-Policy
allows only the package's own script and style, so even a value that got through as
markup could not run.

With a token, every request needs it: an ``Authorization: Bearer`` header, or the
``?token=`` query argument once (the page then sets an HttpOnly cookie holding a digest
of it and drops the argument from the address bar), or that cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import (
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
    )
    from starlette.routing import Route
except ImportError as _missing:  # the extra is not installed
    msg = "the dashboard needs Starlette and Hypercorn: pip install 'actorbus[dashboard]'"
    raise ImportError(msg) from _missing

import anyio

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from actorbus.dashboard._board import Board

__all__ = ["LOOPBACK_HOSTS", "build_app"]

LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.1", "::1", "[::1]")
"""The Host headers a dashboard bound to a loopback address answers (DNS rebinding)."""
_KEEPALIVE: Final = 15.0
"""Seconds between two comments on an idle event stream (proxies close silent ones)."""
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
_STATIC: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


def _read_static(name: str) -> bytes:
    return resources.files("actorbus.dashboard").joinpath("static", name).read_bytes()


class _Guard:
    """GET only, the token when there is one, and the security headers on every answer."""

    def __init__(self, app: ASGIApp, *, token: str | None, cookie: str) -> None:
        self.app = app
        self.cookie = cookie
        self.digest = None if token is None else _digest(token)
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.method != "GET":
            answer: ASGIApp = PlainTextResponse(
                "the dashboard is read-only: GET only\n", 405, headers={"Allow": "GET"}
            )
        elif self.token is None or self._has_token(request):
            answer = self._entry(request) or _Passing(self.app)
        else:
            answer = PlainTextResponse(
                "this dashboard needs its token: open it as /?token=… , or send the header "
                "'Authorization: Bearer …' (the token is --dashboard-token or "
                "$ACTORBUS_DASHBOARD_TOKEN where it runs)\n",
                401,
                headers={"WWW-Authenticate": 'Bearer realm="actorbus dashboard"'},
            )
        await answer(scope, receive, _with_headers(send))

    def _has_token(self, request: Request) -> bool:
        assert self.token is not None  # noqa: S101 - checked by the caller
        assert self.digest is not None  # noqa: S101
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        ):
            return True
        cookie = request.cookies.get(self.cookie, "")
        return hmac.compare_digest(cookie.encode(), self.digest.encode())

    def _entry(self, request: Request) -> Response | None:
        """The page asked with ``?token=``: set the cookie and drop the token from the URL."""
        if self.digest is None or "token" not in request.query_params:
            return None
        if request.url.path != "/":
            return None
        answer = RedirectResponse("/", status_code=303)
        answer.set_cookie(self.cookie, self.digest, httponly=True, samesite="strict", path="/")
        return answer


class _Passing:
    """Hands the request on to the application (an ASGI callable like a response)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _with_headers(send: Send) -> Send:
    async def sending(message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            for name, value in _HEADERS.items():
                if name.lower().encode() not in present:
                    headers.append((name.lower().encode(), value.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _digest(token: str) -> str:
    """What the cookie holds: not the token itself, and only good for this dashboard."""
    return hmac.new(token.encode(), b"actorbus dashboard cookie", hashlib.sha256).hexdigest()


def build_app(
    board: Board, *, token: str | None = None, loopback: bool = True, cookie: str = "actorbus"
) -> Starlette:
    """The dashboard's ASGI application, showing what `board` holds.

    Args:
        board: Where the states come from.
        token: Required on every request when given.
        loopback: Whether it listens on a loopback address only: then it answers only
            requests addressed to a loopback name (a web page elsewhere cannot reach it
            through DNS rebinding).
        cookie: The name of the token cookie (one per port: browsers share cookies
            between the ports of one host).
    """

    async def static(request: Request) -> Response:
        name, media_type = _STATIC[request.url.path]
        return Response(_read_static(name), media_type=media_type)

    async def state(_: Request) -> Response:
        return JSONResponse(board.state or {"starting": True})

    async def events(_: Request) -> _EventStream:
        return _EventStream(board)

    routes = [Route(path, static, methods=["GET"]) for path in _STATIC]
    routes += [
        Route("/api/state", state, methods=["GET"]),
        Route("/api/events", events, methods=["GET"]),
    ]
    middleware = [Middleware(_Guard, token=token, cookie=cookie)]
    if loopback:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS)))
    return Starlette(routes=routes, middleware=middleware)


class _EventStream:
    """Server-sent events: every new state, and a comment now and then to keep it open.

    An ASGI response of its own rather than a generator in a `StreamingResponse`: a
    generator cut short by the client's leaving would be left unclosed.
    """

    def __init__(self, board: Board) -> None:
        self.board = board

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        del scope
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        async with anyio.create_task_group() as tasks:

            async def until_the_client_leaves() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tasks.cancel_scope.cancel()

            tasks.start_soon(until_the_client_leaves)
            board = self.board
            seen = -1
            while True:
                with anyio.move_on_after(_KEEPALIVE) as waited:
                    if not await board.wait(seen):
                        break
                if waited.cancelled_caught:
                    await _chunk(send, b": still here\n\n")
                    continue
                seen = board.version
                data = json.dumps(board.state, separators=(",", ":"))
                await _chunk(send, f"event: state\ndata: {data}\n\n".encode())
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tasks.cancel_scope.cancel()


async def _chunk(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})
