"""Security of the Redis path, against real redis-servers, on asyncio and trio.

- ACL: the line documented in docs/guides/redis.md (read from there, so the two cannot
  drift) runs everything the bridge does, and Redis sees exactly the commands it grants;
  another application's user gets NOPERM, and a transport using it fails with a clear
  `TransportError`.
- TLS: the bridge over ``rediss://`` with a throwaway certificate authority; certificate
  problems stop start-up at once with a message that says what to do.
- Secrets: no password in logs (every logger, DEBUG), exception chains, reprs, stats or
  the output of ``actorbus run --redis``.
"""

from __future__ import annotations

import logging
import secrets
import signal
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import pytest
from cli_support import actorbus_cmd, start_worker
from redis_support import (
    RedisServer,
    RespError,
    SlowReplies,
    TLSFiles,
    dead_key,
    events_key,
    find_free_port,
    new_app,
    raw_client,
    send_raw,
)

from actorbus import (
    Actor,
    ActorSystem,
    Envelope,
    Policy,
    Scope,
    Supervision,
    TransportError,
    event,
    handle,
)
from actorbus._wire import encode
from actorbus.redis import RedisTransport

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterable, Iterator

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

TESTS = Path(__file__).resolve().parent
GUIDE = TESTS.parent / "docs" / "guides" / "redis.md"
SCALING = TESTS.parent / "docs" / "guides" / "scaling.md"
# The placeholders of the guide's ACL line.
GUIDE_USER, GUIDE_PASSWORD, GUIDE_APP = "shop-worker", "s3cret", "shop"
# What clients send to log in: Redis runs them for anyone, whatever the ACL says.
LOGIN_COMMANDS = frozenset({"hello", "auth"})


@event("secure.job", scope=Scope.APP)
class Job:
    n: int


@event("secure.query", scope=Scope.APP)
class Query:
    n: int


def raw_entry(data: dict[str, Any], id_: str) -> dict[str, bytes]:
    envelope = Envelope(type="secure.job", data=data, source="raw", scope=Scope.APP, id=id_)
    return {"e": encode(envelope)}


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - polls state that tasks and Redis change
            await anyio.sleep(0.01)


def documented_acl(user: str, password: str, app: str) -> list[str]:
    """The guide's ``ACL SETUSER`` line, as words, for this user, password and app."""
    lines = [line for line in GUIDE.read_text().splitlines() if line.startswith("ACL SETUSER ")]
    assert len(lines) == 1, f"{GUIDE.name} should document exactly one ACL line"
    words = lines[0].split()
    values = {
        GUIDE_USER: user,
        f">{GUIDE_PASSWORD}": f">{password}",
        f"~actorbus:app:{GUIDE_APP}:*": f"~actorbus:app:{app}:*",
    }
    for placeholder in values:
        assert words.count(placeholder) == 1, f"the guide's ACL line lost {placeholder!r}"
    return [values.get(word, word) for word in words]


def acl_user(server: RedisServer, app: str, password: str | None = None) -> tuple[str, str]:
    """Create a user with the guide's ACL line for `app`; return its name and password."""
    user = f"worker-{secrets.token_hex(3)}"
    password = password or secrets.token_hex(12)
    assert server.cli(*documented_acl(user, password, app)) == "OK"
    return user, password


def user_url(server: RedisServer, user: str, password: str, db: int = 0) -> str:
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"redis://{credentials}@{server.host}:{server.port}/{db}"


def command_stats(server: RedisServer) -> dict[str, dict[str, int]]:
    """``INFO commandstats`` as {command: {"calls": …, "rejected_calls": …, …}}."""
    stats: dict[str, dict[str, int]] = {}
    for line in server.cli("INFO", "commandstats").splitlines():
        name, _, fields = line.strip().partition(":")
        if name.startswith("cmdstat_"):
            pairs = (field.split("=") for field in fields.split(","))
            stats[name.removeprefix("cmdstat_")] = {
                key: int(value) for key, value in pairs if key.endswith("calls")
            }
    return stats


def exception_texts(error: BaseException) -> list[str]:
    """Everything a user could see of `error`: its traceback, and str and repr of every
    exception chained to it (suppressed contexts and group members included)."""
    texts = ["".join(traceback.format_exception(error))]
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        found = pending.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        texts += [str(found), repr(found), "".join(traceback.format_exception(found))]
        pending += [found.__cause__, found.__context__, *getattr(found, "exceptions", ())]
    return texts


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record as it could be written: message, traceback, stack."""
    formatter = logging.Formatter()
    texts: list[str] = []
    for record in caplog.records:
        texts += [record.getMessage(), record.exc_text or "", record.stack_info or ""]
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


def assert_hidden(hidden: Iterable[str], texts: Iterable[str]) -> None:
    hidden = [secret for secret in hidden if secret]
    assert hidden
    for text in texts:
        for secret in hidden:
            assert secret not in text, text.replace(secret, "<<SECRET>>")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger (actorbus, anyio, …) captured from DEBUG up."""
    caplog.set_level(logging.DEBUG)
    return caplog


# -- ACL ----------------------------------------------------------------------------------------


async def test_the_documented_acl_line_is_exactly_what_the_bridge_needs(
    fresh_redis_server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    server = fresh_redis_server
    app = new_app()
    key = events_key(app)
    db = 1  # not 0, so that the client selects it: +select is needed then
    admin_url = f"{server.url.rpartition('/')[0]}/{db}"
    async with raw_client(admin_url) as admin:
        # What a crashed anonymous instance leaves for the janitor: its broadcast group, and
        # a consumer with nothing pending in a competing-consumer group.
        await admin.create_group(key, "b:~crashed")
        await admin.create_group(key, "g:work")
        await admin("XGROUP", "CREATECONSUMER", key, "g:work", "~crashed")
        # Entries read by a consumer that died: one to claim, one delivered too often.
        await admin.xadd(key, raw_entry({"n": 7}, "left-1"))
        poison = await admin.xadd(key, raw_entry({"n": 8}, "poison-1"))
        await admin.read_group("g:work", "dead", key)
        for _ in range(2):
            await admin("XCLAIM", key, "g:work", "dead", 0, poison)
    user, password = acl_user(server, app)
    url = user_url(server, user, password, db)
    granted = {word[1:] for word in documented_acl(user, password, app) if word[0] == "+"}
    assert server.cli("CONFIG", "RESETSTAT") == "OK"

    worked: list[int] = []
    audited: list[int] = []

    class Worker(Actor):
        supervision = Supervision(policy=Policy.DEAD_LETTER)

        @handle(Job, group="work")
        def work(self, job: Job) -> None:
            if job.n < 0:
                raise ValueError("negative")
            worked.append(job.n)

        @handle(Query, group="work")
        def answer(self, query: Query) -> int:
            return query.n * 2

    @handle(Job)
    async def audit(job: Job) -> None:
        audited.append(job.n)

    def transport() -> RedisTransport:
        return RedisTransport(
            url, trim_interval=0.05, claim_after=0.2, stale_after=0.3, max_deliveries=3
        )

    def janitor_and_trimmer_ran() -> bool:
        stats = command_stats(server)
        names = ("xgroup|destroy", "xgroup|delconsumer", "xtrim")
        return all(stats.get(name, {}).get("calls", 0) > 0 for name in names)

    a_transport = transport()
    async with (
        ActorSystem(app, transport=a_transport, actors=[Worker]),
        ActorSystem(app, transport=transport()) as b,
    ):
        await b.spawn(audit)
        assert await b.request(Query(21), timeout=5) == 42
        await b.publish(Job(1))
        await b.publish(Job(-1))  # dead-lettered by supervision
        await eventually(lambda: sorted(worked) == [1, 7] and sorted(audited) == [-1, 1])
        await eventually(lambda: a_transport.stats().dead_lettered == 2)
        with anyio.fail_after(10):
            while not await anyio.to_thread.run_sync(janitor_and_trimmer_ran):  # noqa: ASYNC110 - polls Redis
                await anyio.sleep(0.05)
    used_stats = command_stats(server)
    (acl_log,) = send_raw(server.port, ("AUTH", str(server.password)), ("ACL", "LOG"))[1:]

    async with raw_client(admin_url) as admin:
        groups = {g[b"name"].decode() for g in await admin.groups(key)}
        consumers = {c[b"name"].decode() for c in await admin.consumers(key, "g:work")}
        letters = [fields for _, fields in await admin.entries(dead_key(app))]
        pending = await admin.pending(key, "g:work")
    used = {name for name, fields in used_stats.items() if fields["calls"] > 0}
    used -= {"info", "config|resetstat"}  # the test's own, as the default user
    assert acl_log == []  # no command or key was ever refused to the bridge
    assert not [name for name, fields in used_stats.items() if fields["rejected_calls"]]
    assert used - LOGIN_COMMANDS == granted  # each one needed, none missing
    assert "select" in used
    # The work really happened under the restricted user:
    assert groups == {"g:work"}  # the crashed instance's group is gone (and both ours)
    assert "~crashed" not in consumers
    assert {b"poison-1" in fields[b"e"] for fields in letters} == {True, False}
    assert pending == 0
    # The two dead letters are the only warnings: nothing was refused, nothing failed.
    warned = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]
    assert len(warned) == 2
    assert all("dead-letter" in message for message in warned)
    assert_hidden([password], log_texts(logs))


@event("secure.step", scope=Scope.APP, key="order")
class Step:
    order: str
    n: int


def partition_acl(user: str) -> list[str]:
    """The scaling guide's ACL line (what partitions add), for this user."""
    lines = [line for line in SCALING.read_text().splitlines() if line.startswith("ACL SETUSER ")]
    assert len(lines) == 1, f"{SCALING.name} should document exactly one ACL line"
    words = lines[0].split()
    assert words[2] == GUIDE_USER
    return [*words[:2], user, *words[3:]]


async def test_the_documented_acl_lines_run_a_partitioned_group(
    fresh_redis_server: RedisServer,
) -> None:
    """The Redis guide's line plus the scaling guide's: nothing refused, each added one used."""
    server = fresh_redis_server
    app = new_app()
    user, password = acl_user(server, app)
    assert server.cli(*partition_acl(user)) == "OK"
    added = {word[1:] for word in partition_acl(user) if word[0] == "+"}
    url = user_url(server, user, password)
    assert server.cli("CONFIG", "RESETSTAT") == "OK"
    handled: list[tuple[str, int]] = []

    @handle(Step, group="work")
    async def work(step: Step) -> None:
        handled.append((step.order, step.n))

    def transport() -> RedisTransport:
        return RedisTransport(url, partitions=4, lease=1.0, block=0.2)

    first = transport()
    async with ActorSystem(app, transport=first) as a:
        await a.spawn(work)
        async with ActorSystem(app, transport=transport()) as b:
            await b.spawn(work)
            await eventually(lambda: len(first.owned("work")) == 2)
            for n in range(40):
                await a.publish(Step(f"o-{n % 5}", n))
            await eventually(lambda: len(handled) == 40)
        await eventually(lambda: len(first.owned("work")) == 4)  # b left: handed over
    used_stats = command_stats(server)
    (acl_log,) = send_raw(server.port, ("AUTH", str(server.password)), ("ACL", "LOG"))[1:]
    assert acl_log == []
    assert not [name for name, fields in used_stats.items() if fields["rejected_calls"]]
    used = {name for name, fields in used_stats.items() if fields["calls"] > 0}
    assert added <= used  # each one needed
    assert sorted(n for _, n in handled) == list(range(40))


async def test_a_user_without_xgroup_setid_reads_the_broadcast_as_before(
    redis_server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    """The ACL line of earlier versions lacks +xgroup|setid: warn once, then read."""
    app = new_app()
    user = f"worker-{secrets.token_hex(3)}"
    password = secrets.token_hex(12)
    words = [w for w in documented_acl(user, password, app) if w != "+xgroup|setid"]
    assert redis_server.cli(*words) == "OK"
    url = user_url(redis_server, user, password)
    worked: list[int] = []

    @handle(Job, group="work")
    async def work(job: Job) -> None:
        worked.append(job.n)

    publisher = RedisTransport(url, block=0.05)
    try:
        async with (
            ActorSystem(app, transport=RedisTransport(url)) as worker,
            ActorSystem(app, transport=publisher) as publishing,
        ):
            await worker.spawn(work)
            for n in range(20):
                await publishing.publish(Job(n))
            await eventually(lambda: sorted(worked) == list(range(20)))
            # No broadcast subscriber: the publisher's broadcast group was read and acked.
            await eventually(lambda: publisher.stats().acked == 20)
    finally:
        redis_server.cli("ACL", "DELUSER", user)
    warned = [r.getMessage() for r in logs.records if "XGROUP SETID" in r.getMessage()]
    assert len([m for m in warned if f"b:{publisher.instance}" in m]) == 1  # once, then reads
    assert all("+xgroup|setid" in message for message in warned)


async def test_another_applications_user_gets_noperm_and_a_clear_error(
    redis_server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    ours, theirs = new_app(), new_app()
    user, password = acl_user(redis_server, theirs)
    their_url = user_url(redis_server, user, password)
    key = events_key(ours)
    try:
        async with raw_client(redis_server.url) as admin:
            await admin.create_group(key, "g:work", "0")
            await admin.xadd(key, raw_entry({"n": 1}, "private-1"))
        async with raw_client(their_url) as intruder:
            # Commands the user may run, on keys it may not touch.
            attempts: list[tuple[str | int, ...]] = [
                ("XREVRANGE", key, "+", "-", "COUNT", 1),
                ("XREAD", "STREAMS", key, "0"),
                ("XREADGROUP", "GROUP", "g:work", "spy", "STREAMS", key, ">"),
                ("XADD", key, "*", "e", "{}"),
                ("XTRIM", key, "MAXLEN", 0),
                ("SET", f"actorbus:app:{ours}:alive:spy", "1"),
            ]
            for attempt in attempts:
                with pytest.raises(RespError, match=r"NOPERM .*no permissions to access"):
                    await intruder(*attempt)
            await intruder.xadd(events_key(theirs), {"e": b"{}"})  # its own: allowed
        transport = RedisTransport(their_url)
        with anyio.fail_after(5), pytest.raises(TransportError) as caught:
            async with ActorSystem(ours, transport=transport):
                pytest.fail("started with another application's user")
    finally:
        redis_server.cli("ACL", "DELUSER", user)
    message = str(caught.value)
    assert "NOPERM" in message
    assert f"application {ours!r}" in message
    assert f"~actorbus:app:{ours}:*" in message
    assert f"redis://{user}:***@" in message
    # An actorbus error that says it all: the client's error is not chained to it.
    assert caught.value.__cause__ is None
    assert "PermissionDenied" not in "".join(traceback.format_exception(caught.value))
    assert_hidden([password], exception_texts(caught.value) + log_texts(logs))


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def misnamed_tls_server() -> Iterator[RedisServer]:
    """A TLS server whose certificate names only ``redis.example``, not 127.0.0.1."""
    with RedisServer(tls=True, tls_hostnames=("redis.example",)) as server:
        yield server


@pytest.fixture(scope="module")
def other_authority(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A certificate authority that signed nothing the servers use."""
    return TLSFiles.generate(tmp_path_factory.mktemp("other-ca"))


def tls_url(server: RedisServer, query: str = "", host: str | None = None) -> str:
    url = f"rediss://:{server.password}@{host or server.host}:{server.port}/0"
    return f"{url}?{query}" if query else url


def ca_query(files: TLSFiles) -> str:
    return f"ssl_ca_certs={quote(str(files.ca_cert), safe='')}"


@pytest.mark.parametrize("configured", ["in the URL", "as ssl_context"])
async def test_the_bridge_works_over_tls(
    tls_redis_server: RedisServer, logs: pytest.LogCaptureFixture, configured: str
) -> None:
    server = tls_redis_server
    app = new_app()

    def transport() -> RedisTransport:
        if configured == "in the URL":
            return RedisTransport(server.url)  # rediss://…?ssl_ca_certs=…
        return RedisTransport(tls_url(server), ssl_context=server.tls_files.client_context())

    everyone: list[tuple[str, int]] = []
    shared: list[int] = []

    def audit(label: str) -> Callable[[Job], Any]:
        @handle(Job)
        async def on_job(job: Job) -> None:
            everyone.append((label, job.n))

        on_job.__name__ = f"audit_{label}"
        return on_job

    class Worker(Actor):
        @handle(Job, group="work")
        async def work(self, job: Job) -> None:
            shared.append(job.n)

        @handle(Query, group="answers")
        def answer(self, query: Query) -> int:
            return query.n + 1

    a_transport = transport()
    async with (
        ActorSystem(app, transport=a_transport, actors=[Worker]) as a,
        ActorSystem(app, transport=transport()) as b,
    ):
        await a.spawn(audit("a"))
        await b.spawn(audit("b"))
        await b.spawn(Worker)
        for n in range(6):
            await (a if n % 2 else b).publish(Job(n))
        assert await b.request(Query(41), timeout=5) == 42
        await eventually(lambda: len(everyone) == 12 and len(shared) == 6)
        assert a_transport.stats().connected
        assert repr(a_transport).startswith("<RedisTransport rediss://:***@")
    assert sorted(shared) == list(range(6))  # each once, across both instances
    assert sorted(n for label, n in everyone if label == "a") == list(range(6))
    assert_hidden([str(server.password)], log_texts(logs))


def test_the_tls_server_speaks_only_tls(tls_redis_server: RedisServer) -> None:
    server = tls_redis_server
    context = server.tls_files.client_context()
    (refused,) = send_raw(server.port, ("PING",), ssl_context=context)
    assert isinstance(refused, RespError)
    assert refused.code == "NOAUTH"
    assert send_raw(
        server.port, ("AUTH", str(server.password)), ("PING",), ssl_context=context
    ) == ["OK", "PONG"]
    with pytest.raises(OSError):  # reset or closed: the server wants a TLS handshake
        send_raw(server.port, ("AUTH", str(server.password)), ("PING",), timeout=1.0)
    assert server.cli("CONFIG", "GET", "port").splitlines() == ["port", "0"]
    assert server.url.startswith("rediss://")


@pytest.mark.parametrize("problem", ["no CA given", "another CA", "a wrong host name"])
async def test_an_unverifiable_server_stops_start_up_at_once(
    tls_redis_server: RedisServer,
    misnamed_tls_server: RedisServer,
    other_authority: TLSFiles,
    logs: pytest.LogCaptureFixture,
    problem: str,
) -> None:
    if problem == "no CA given":  # the system's authorities do not know the throwaway one
        server, url, expected = tls_redis_server, tls_url(tls_redis_server), "was rejected"
    elif problem == "another CA":
        server = tls_redis_server
        url, expected = tls_url(server, ca_query(other_authority)), "was rejected"
    else:
        server = misnamed_tls_server
        url, expected = tls_url(server, ca_query(server.tls_files)), "is not valid for that host"
    started = time.monotonic()
    # Well under the 5 s connect timeout: the failure is not retried.
    with anyio.fail_after(3), pytest.raises(TransportError) as caught:
        async with ActorSystem(new_app(), transport=RedisTransport(url)):
            pytest.fail("started with an unverified server")
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert f"the server's TLS certificate {expected}" in message
    if expected == "was rejected":
        assert "ssl_ca_certs=/path/to/ca.pem" in message
        assert "ssl_context" in message
    else:
        assert "mismatch" in message
        assert "host name or address the certificate lists" in message
    assert elapsed < 3
    assert_hidden([str(server.password)], exception_texts(caught.value) + log_texts(logs))


async def test_a_tls_failure_while_reconnecting_is_logged_with_what_to_check(
    tls_redis_server: RedisServer,
    misnamed_tls_server: RedisServer,
    logs: pytest.LogCaptureFixture,
) -> None:
    server = tls_redis_server
    with SlowReplies(server) as proxy:
        transport = RedisTransport(proxy.url)
        async with ActorSystem(new_app(), transport=transport) as system:
            await system.publish(Job(1))
            # The connections drop, and the server met on reconnecting has a certificate
            # the client does not trust (another authority's, for another host).
            proxy.upstream = (misnamed_tls_server.host, misnamed_tls_server.port)
            proxy.drop()

            def advised() -> list[str]:
                return [text for text in log_texts(logs) if "cannot reconnect" in text]

            rejected = "the server's TLS certificate was rejected"
            await eventually(lambda: any(rejected in text for text in advised()))
            await anyio.sleep(1.5)  # more tries, by every part of the bridge
            # Once per outage (a handshake the proxy cut while dropping is another line).
            (advice,) = (text for text in advised() if rejected in text)
            assert "ssl_ca_certs=/path/to/ca.pem" in advice
            assert not transport.stats().connected
            proxy.upstream = (server.host, server.port)
            await eventually(lambda: transport.stats().connected)
            await system.publish(Job(2))
    logged = log_texts(logs)
    assert any("lost the connection to Redis" in text for text in logged)
    assert any("reconnected to Redis" in text for text in logged)
    assert_hidden([str(server.password)], logged)


async def test_the_host_name_check_is_on_unless_turned_off(
    tls_redis_server: RedisServer, misnamed_tls_server: RedisServer
) -> None:
    # The certificate of the usual server lists both localhost and 127.0.0.1.
    by_name = tls_url(tls_redis_server, ca_query(tls_redis_server.tls_files), host="localhost")
    async with ActorSystem(new_app(), transport=RedisTransport(by_name)) as system:
        await system.publish(Job(1))
    misnamed = misnamed_tls_server
    unchecked = tls_url(misnamed, f"{ca_query(misnamed.tls_files)}&ssl_check_hostname=false")
    async with ActorSystem(new_app(), transport=RedisTransport(unchecked)) as system:
        await system.publish(Job(1))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl_ca_certs=/no/such/ca.pem", r"cannot load ssl_ca_certs='/no/such/ca.pem'.*No such"),
        ("ssl_ca_certs={not_a_cert}", r"cannot load ssl_ca_certs=.*(PEM|certificate)"),
        ("ssl_ca_cert={ca}", r"unknown query argument 'ssl_ca_cert'; the transport reads db, "),
        ("ssl_cert_reqs=maybe", r"ssl_cert_reqs must be required, optional or none"),
        ("ssl_check_hostname=perhaps", r"ssl_check_hostname must be true or false"),
        ("ssl_cert_reqs=none&ssl_check_hostname=true", r"needs certificate verification"),
        ("ssl_keyfile={ca}", r"ssl_keyfile needs ssl_certfile"),
        ("ssl_certfile=/no/such/cert.pem", r"cannot load ssl_certfile='/no/such/cert.pem'"),
    ],
)
def test_tls_options_are_checked_when_the_transport_is_created(
    tls_redis_server: RedisServer, tmp_path: Path, query: str, expected: str
) -> None:
    not_a_cert = tmp_path / "not-a-cert.pem"
    not_a_cert.write_text("hello\n")
    query = query.format(ca=tls_redis_server.tls_files.ca_cert, not_a_cert=not_a_cert)
    with pytest.raises(ValueError, match=expected) as caught:
        RedisTransport(tls_url(tls_redis_server, query))
    assert_hidden([str(tls_redis_server.password)], exception_texts(caught.value))


def test_tls_options_need_rediss_and_come_one_way(tls_redis_server: RedisServer) -> None:
    files = tls_redis_server.tls_files
    plain = f"redis://:pw-{secrets.token_hex(4)}@127.0.0.1:6379/0"
    with pytest.raises(ValueError, match=r"need a rediss:// URL: redis://:\*\*\*@"):
        RedisTransport(f"{plain}?{ca_query(files)}")
    with pytest.raises(ValueError, match="need a rediss:// URL"):
        RedisTransport(plain, ssl_context=files.client_context())
    with pytest.raises(ValueError, match="both in the URL and as ssl_context"):
        RedisTransport(tls_redis_server.url, ssl_context=files.client_context())


# -- secrets ------------------------------------------------------------------------------------

# A password with characters that must be percent-escaped in a URL: the decoded form, which
# the client sends, must stay hidden as well as the escaped one.
SPECIAL = "p@ss:w/rd?#%"


async def test_reprs_and_stats_never_show_the_password(redis_server: RedisServer) -> None:
    app = new_app()
    user, password = acl_user(redis_server, app, f"{SPECIAL}{secrets.token_hex(6)}")
    url = user_url(redis_server, user, password)
    hidden = [password, quote(password, safe="")]
    transport = RedisTransport(url)
    seen = [repr(transport), str(transport), repr(transport.settings)]
    try:
        async with ActorSystem(app, transport=transport) as system:
            await system.publish(Job(1))
            seen += [repr(transport), repr(transport.stats()), repr(transport.keys)]
            seen += [repr(system), str(system.transport)]
    finally:
        redis_server.cli("ACL", "DELUSER", user)
    seen += [repr(transport), repr(transport.stats())]
    assert f"<RedisTransport redis://{user}:***@{redis_server.host}" in seen[0]
    assert_hidden(hidden, seen)


@pytest.mark.parametrize("failure", ["connection refused", "wrong password", "unknown user"])
async def test_start_up_errors_never_show_the_password(
    redis_server: RedisServer, logs: pytest.LogCaptureFixture, failure: str
) -> None:
    password = f"{SPECIAL}{secrets.token_hex(6)}"
    port = find_free_port() if failure == "connection refused" else redis_server.port
    user = f"nobody-{secrets.token_hex(3)}" if failure == "unknown user" else ""
    url = f"redis://{user}:{quote(password, safe='')}@{redis_server.host}:{port}/0"
    with anyio.fail_after(5), pytest.raises(TransportError, match="cannot connect") as caught:
        async with ActorSystem(new_app(), transport=RedisTransport(url)):
            pytest.fail("started")
    if failure != "connection refused":
        assert "check the user name and password" in str(caught.value)
    assert f"redis://{user}:***@" in str(caught.value)
    texts = exception_texts(caught.value) + log_texts(logs)
    assert_hidden([password, quote(password, safe=""), str(redis_server.password)], texts)


async def test_a_password_for_a_server_without_one_fails_at_start_up(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Some clients let that handshake through; the bridge's connections do not.

    It used to start (the control plane's client forgave it), then log an error from
    every reader several times a second.
    """
    password = f"{SPECIAL}{secrets.token_hex(6)}"
    with RedisServer(requirepass=False) as server:
        url = f"redis://:{quote(password, safe='')}@{server.host}:{server.port}/0"
        with anyio.fail_after(5), pytest.raises(TransportError, match="cannot connect") as caught:
            async with ActorSystem(new_app(), transport=RedisTransport(url)):
                pytest.fail("started")
    assert "without any password configured" in str(caught.value)
    texts = exception_texts(caught.value) + log_texts(logs)
    assert_hidden([password, quote(password, safe="")], texts)


async def test_an_outage_never_shows_the_password(
    fresh_redis_server: RedisServer, logs: pytest.LogCaptureFixture
) -> None:
    server = fresh_redis_server
    app = new_app()
    user, password = acl_user(server, app, f"{SPECIAL}{secrets.token_hex(6)}")
    seen: list[int] = []

    @handle(Job)
    async def on_job(job: Job) -> None:
        seen.append(job.n)

    transport = RedisTransport(user_url(server, user, password), publish_timeout=0.5)
    async with ActorSystem(app, transport=transport) as system:
        await system.spawn(on_job)
        await system.publish(Job(1))
        await eventually(lambda: seen == [1])
        await anyio.to_thread.run_sync(server.stop)
        with pytest.raises(TransportError, match="Redis at") as caught:
            await system.publish(Job(2))
        await eventually(lambda: not transport.stats().connected)
        await anyio.to_thread.run_sync(server.start)
        # ACL users live in memory: until it is back, reconnects are refused (logged too).
        await anyio.sleep(0.3)
        acl_user_again = documented_acl(user, password, app)
        await anyio.to_thread.run_sync(lambda: server.cli(*acl_user_again))
        await eventually(lambda: transport.stats().connected, timeout=15)
        await system.publish(Job(3))
        await eventually(lambda: 3 in seen, timeout=10)
    assert any("lost the connection" in r.getMessage() for r in logs.records)
    texts = exception_texts(caught.value) + log_texts(logs) + [repr(transport.stats())]
    assert_hidden([password, quote(password, safe="")], texts)


@pytest.mark.parametrize(
    ("url", "leaked"),
    [
        ("redis://:Zq9x/Kw7@127.0.0.1:6379/0", ["Zq9x", "Kw7"]),  # '/' ends the authority
        ("redis://user:Zq9x?Kw7@127.0.0.1/0", ["Zq9x", "Kw7"]),  # '?' starts a query
        ("redis://:Zq9x#Kw7@127.0.0.1/0", ["Zq9x", "Kw7"]),  # '#' starts a fragment
        ("rediss://user:12/97531@127.0.0.1/0", ["97531"]),  # '/' again: a "port" of 12
        ("redis://user:12?97531@host/0", ["97531"]),
        ("redis://user:12#97531@host/0", ["97531"]),  # only the '#' gives this one away
        ("redis://127.0.0.1:6379/0?password=Zq9xKw7", ["Zq9xKw7"]),
        ("http://user:Zq9x#Kw7@127.0.0.1/0", ["Zq9x", "Kw7"]),  # and not even redis://
    ],
)
def test_a_password_that_spills_out_of_the_url_is_never_shown(url: str, leaked: list[str]) -> None:
    with pytest.raises(ValueError, match="URL") as caught:
        RedisTransport(url)
    assert_hidden(leaked, exception_texts(caught.value))


def test_a_password_is_redacted_however_it_is_written() -> None:
    from actorbus.redis._config import redact_url, scrub  # noqa: PLC0415 - the helpers

    url = f"rediss://u:{quote(SPECIAL, safe='')}@h:1/0"
    assert redact_url(url) == "rediss://u:***@h:1/0"
    assert scrub(f"a {SPECIAL} b {quote(SPECIAL, safe='')} c", url) == "a *** b *** c"
    assert redact_url("redis://h:1/0?password=Zq9xKw7&db=1") == "redis://h:1/0?password=***&db=1"


# -- the command line ---------------------------------------------------------------------------


def actorbus_run(*args: str) -> subprocess.CompletedProcess[str]:
    return actorbus_cmd("run", "worker_targets:system", *args)


@pytest.mark.slow
@pytest.mark.parametrize(
    "failure", ["connection refused", "wrong password", "unverified TLS", "malformed URL"]
)
def test_actorbus_run_never_shows_the_password_when_it_fails(
    redis_server: RedisServer, tls_redis_server: RedisServer, failure: str
) -> None:
    password = f"{SPECIAL}{secrets.token_hex(6)}"
    escaped = quote(password, safe="")
    host = redis_server.host
    hidden = [password, escaped]
    expected = "cannot connect to Redis"
    if failure == "connection refused":
        url = f"redis://user:{escaped}@{host}:{find_free_port()}/0"
    elif failure == "wrong password":
        url = f"redis://user:{escaped}@{host}:{redis_server.port}/0"
    elif failure == "unverified TLS":
        url = tls_url(tls_redis_server)
        hidden = [str(tls_redis_server.password)]
        expected = "TLS certificate was rejected"
    else:
        url = f"redis://user:Zq9x/{escaped}@{host}:{redis_server.port}/0"
        hidden, expected = ["Zq9x", escaped], "invalid Redis URL"
    result = actorbus_run("--redis", url, "--log-level", "DEBUG")
    # a URL that cannot be a Redis URL is a usage error; the others fail the system
    assert result.returncode == (2 if failure == "malformed URL" else 1), result.stderr
    assert expected in result.stderr
    assert_hidden(hidden, [result.stdout, result.stderr])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "via"), [("asyncio", "option"), ("trio", "option"), ("asyncio", "environment")]
)
def test_actorbus_run_never_shows_the_password_while_it_runs(
    redis_server: RedisServer, tmp_path: Path, backend: str, via: str
) -> None:
    user, password = acl_user(redis_server, "targets", f"{SPECIAL}{secrets.token_hex(6)}")
    url = user_url(redis_server, user, password)
    if via == "environment":  # ACTORBUS_REDIS_URL keeps it out of the process list
        env, redis_args = {"ACTORBUS_REDIS_URL": url}, []
    else:
        env, redis_args = {}, ["--redis", url]
    worker: subprocess.Popen[str] | None = None
    try:
        worker, _ = start_worker(
            tmp_path,
            *["worker_targets:system", *redis_args, "--backend", backend],
            *["--status", "0.1", "--log-level", "DEBUG"],
            env=env,
        )
        time.sleep(0.5)  # a few status lines
        # the URL, given either way, is in use: the worker is connected as that user
        assert f"user={user} " in redis_server.cli("CLIENT", "LIST")
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=30)
    finally:
        if worker is not None:
            worker.kill()
        redis_server.cli("ACL", "DELUSER", user)
    assert worker.returncode == 0, stderr
    assert "depth" in stderr  # the status lines were there to check
    assert "running with <RedisTransport redis://" in stderr  # which Redis, password hidden
    assert_hidden([password, quote(password, safe="")], [stdout, stderr])
