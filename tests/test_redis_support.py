"""The redis-server fixture really starts, protects, restarts and cleans up a server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import redis_support
from redis_support import INSTALL_HINT, RedisServer, RespError, send_raw

# "redis_support" is normally loaded by tests/conftest.py; naming it here as well (a no-op
# then) lets this file run on its own.
pytest_plugins = ["pytester", "redis_support"]

pytestmark = pytest.mark.redis


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_server_answers_after_auth(redis_server: RedisServer) -> None:
    assert redis_server.password
    assert redis_server.url == (f"redis://:{redis_server.password}@127.0.0.1:{redis_server.port}/0")
    replies = send_raw(redis_server.port, ("AUTH", redis_server.password), ("PING",))
    assert replies == ["OK", "PONG"]
    assert redis_server.cli("SET", "support:key", "value") == "OK"
    assert redis_server.cli("GET", "support:key") == "value"


def test_commands_without_password_are_refused(redis_server: RedisServer) -> None:
    (reply,) = send_raw(redis_server.port, ("PING",))
    assert isinstance(reply, RespError)
    assert reply.code == "NOAUTH"
    auth, ping = send_raw(redis_server.port, ("AUTH", "not-the-password"), ("PING",))
    assert isinstance(auth, RespError)
    assert auth.code == "WRONGPASS"
    assert isinstance(ping, RespError)


def test_server_is_configured_for_tests(redis_server: RedisServer) -> None:
    def config(name: str) -> object:
        *_, reply = send_raw(
            redis_server.port, ("AUTH", str(redis_server.password)), ("CONFIG", "GET", name)
        )
        return reply

    assert config("bind") == ["bind", "127.0.0.1"]
    assert config("save") == ["save", ""]
    assert config("appendonly") == ["appendonly", "no"]
    assert config("protected-mode") == ["protected-mode", "no"]
    assert config("dir") == ["dir", str(redis_server.directory.resolve())]


def test_restart_keeps_port_and_directory(fresh_redis_server: RedisServer) -> None:
    server = fresh_redis_server
    port, directory, pid = server.port, server.directory, server.pid

    server.stop()
    assert not server.running
    assert not server.ping()
    with pytest.raises(ConnectionRefusedError):
        send_raw(port, ("PING",))

    server.start()
    assert server.ping()
    assert (server.port, server.directory) == (port, directory)
    assert server.pid != pid

    server.restart()
    assert server.ping()
    assert server.port == port


def test_kill_then_start_on_the_same_port(fresh_redis_server: RedisServer) -> None:
    port, pid = fresh_redis_server.port, fresh_redis_server.pid
    assert pid is not None

    fresh_redis_server.kill()
    assert not _pid_alive(pid)
    assert fresh_redis_server.pid is None
    with pytest.raises(ConnectionRefusedError):
        send_raw(port, ("PING",))

    fresh_redis_server.start()
    assert fresh_redis_server.port == port
    assert send_raw(port, ("AUTH", str(fresh_redis_server.password)), ("PING",)) == [
        "OK",
        "PONG",
    ]


def test_without_aof_an_outage_loses_the_data(fresh_redis_server: RedisServer) -> None:
    fresh_redis_server.cli("SET", "k", "v")
    fresh_redis_server.restart()
    assert fresh_redis_server.cli("EXISTS", "k") == "0"


def test_aof_keeps_data_across_stop_and_kill() -> None:
    with RedisServer(appendonly=True) as server:
        server.cli("SET", "before-stop", "1")
        server.restart()
        assert server.cli("GET", "before-stop") == "1"

        server.cli("SET", "before-kill", "2")
        server.kill()
        server.start()
        assert server.cli("MGET", "before-stop", "before-kill") == "1\n2"


def test_password_can_be_chosen_or_disabled() -> None:
    with RedisServer(password="s3cret") as server:
        assert server.password == "s3cret"
        assert send_raw(server.port, ("AUTH", "s3cret"), ("PING",)) == ["OK", "PONG"]
    with RedisServer(requirepass=False) as server:
        assert server.password is None
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert send_raw(server.port, ("PING",)) == ["PONG"]
        assert server.cli("PING") == "PONG"


def test_password_must_be_url_safe() -> None:
    with pytest.raises(ValueError, match="URL-special"):
        RedisServer(password="p@ss:word")


def test_logfile_option(tmp_path: Path) -> None:
    logfile = tmp_path / "server.log"
    with RedisServer(logfile=logfile) as server:
        assert "Ready to accept connections" in logfile.read_text()
        assert server.log() == logfile.read_text()


def test_a_taken_port_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        candidates = iter([taken])
        real_find_free_port = redis_support.find_free_port
        monkeypatch.setattr(
            redis_support, "find_free_port", lambda: next(candidates, None) or real_find_free_port()
        )
        with RedisServer() as server:
            assert server.port != taken
            assert server.ping()


def test_close_reaps_process_and_directory() -> None:
    server = RedisServer().start()
    pid, directory = server.pid, server.directory
    assert pid is not None
    assert directory.is_dir()
    server.close()
    assert not _pid_alive(pid)
    assert not directory.exists()
    server.close()  # idempotent
    with pytest.raises(redis_support.RedisServerError, match="closed"):
        server.start()


def test_a_failing_start_explains_itself() -> None:
    server = RedisServer(extra_config={"maxmemory-policy": "not-a-policy"})
    with pytest.raises(redis_support.RedisServerError, match="exited with status"):
        server.start()
    server.close()


def test_missing_server_fails_with_install_command() -> None:
    server = RedisServer(executable="no-such-redis-server-binary")
    with pytest.raises(pytest.fail.Exception, match=INSTALL_HINT):
        server.start()
    server.close()


_INNER_TESTS = """
import os
from pathlib import Path

def test_session_a(redis_server, request):
    Path("session_a").write_text(str(redis_server.port))

def test_session_b(redis_server, request):
    Path("session_b").write_text(str(redis_server.port))
    assert request.node.get_closest_marker("redis") is not None

def test_fresh(fresh_redis_server):
    Path("fresh").write_text(f"{fresh_redis_server.pid} {fresh_redis_server.directory}")
    fresh_redis_server.kill()

def test_unrelated(request):
    assert request.node.get_closest_marker("redis") is None
"""


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # The inner runs need only this plugin; autoloading the others takes seconds.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def test_fixtures_share_mark_and_clean_up(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=_INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "redis_support", "--strict-markers")
    result.assert_outcomes(passed=4)
    session_port = (pytester.path / "session_a").read_text()
    assert (pytester.path / "session_b").read_text() == session_port
    pid, directory = (pytester.path / "fresh").read_text().split()
    assert not _pid_alive(int(pid))
    assert not Path(directory).exists()

    deselected = pytester.runpytest_inprocess("-p", "redis_support", "-m", "not redis")
    deselected.assert_outcomes(passed=1, deselected=3)


def test_fixture_fails_rather_than_skips_without_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_inner="def test_needs_redis(redis_server):\n    pass\n")
    monkeypatch.setenv("PATH", str(pytester.path))
    result = pytester.runpytest_inprocess("-p", "redis_support")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{INSTALL_HINT}*"])
