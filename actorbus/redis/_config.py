"""Settings, key names, stream ids, URL checks and the redacted URL of the Redis bridge."""

from __future__ import annotations

import re
import secrets
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import attrs

from actorbus.redis._slots import partition_tag

__all__ = [
    "MAX_PARTITIONS",
    "TLS_OPTIONS",
    "Keys",
    "Settings",
    "StreamId",
    "anonymous_instance",
    "broadcast_group",
    "check_instance",
    "check_url",
    "format_id",
    "is_anonymous",
    "member_group",
    "parse_id",
    "redact_url",
    "scrub",
]

MAX_PARTITIONS: Final = 1024
"""The largest number of partitions a transport accepts."""

StreamId = tuple[int, int]
"""A stream entry id as (milliseconds, sequence), ordered as Redis orders them."""

_INSTANCE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_ANONYMOUS: Final = "~"

TLS_OPTIONS: Final = (
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_check_hostname",
    "ssl_keyfile",
)
"""The query arguments of a ``rediss://`` URL that `tls_context` reads."""
_URL_OPTIONS: Final = frozenset({"db", *TLS_OPTIONS})
_DB_PATH: Final = re.compile(r"/?\d*")
_QUERY_PASSWORD: Final = re.compile(r"((?:^|&)password=)[^&]*")
_ESCAPE: Final = (
    "percent-escape special characters in the user name and password "
    "(urllib.parse.quote(password, safe=''))"
)


@attrs.frozen
class Settings:
    """The tunables of one `RedisTransport` (see its docstring)."""

    claim_after: float
    max_deliveries: int
    maxlen: int | None
    max_message_bytes: int
    publish_timeout: float
    block: float
    batch: int
    trim_interval: float
    stale_after: float
    dead_maxlen: int | None
    partitions: int = 1
    lease: float = 10.0

    @classmethod
    def checked(
        cls,
        *,
        claim_after: float,
        max_deliveries: int,
        maxlen: int | None,
        max_message_bytes: int,
        publish_timeout: float,
        block: float,
        batch: int,
        trim_interval: float,
        stale_after: float,
        dead_maxlen: int | None,
        partitions: int,
        lease: float,
    ) -> Settings:
        """The settings, each checked (see `RedisTransport` for what each means).

        Raises:
            ValueError: For a setting out of its range, naming it.
        """
        positive = {
            "claim_after": claim_after,
            "publish_timeout": publish_timeout,
            "block": block,
            "trim_interval": trim_interval,
            "stale_after": stale_after,
            "lease": lease,
        }
        for name, value in positive.items():
            if not value > 0:
                msg = f"RedisTransport({name}=...) must be > 0 seconds, got {value!r}"
                raise ValueError(msg)
        counts = {"max_deliveries": max_deliveries, "batch": batch, "maxlen": maxlen or 1}
        counts |= {"max_message_bytes": max_message_bytes, "dead_maxlen": dead_maxlen or 1}
        for name, value in counts.items():
            if not isinstance(value, int) or value < 1:
                msg = f"RedisTransport({name}=...) must be a positive integer, got {value!r}"
                raise ValueError(msg)
        if (
            isinstance(partitions, bool)
            or not isinstance(partitions, int)
            or not 1 <= partitions <= MAX_PARTITIONS
        ):
            msg = (
                f"RedisTransport(partitions=...) must be an integer from 1 to "
                f"{MAX_PARTITIONS}, got {partitions!r}"
            )
            raise ValueError(msg)
        return cls(
            claim_after=claim_after,
            max_deliveries=max_deliveries,
            maxlen=maxlen,
            max_message_bytes=max_message_bytes,
            publish_timeout=publish_timeout,
            block=block,
            batch=batch,
            trim_interval=trim_interval,
            stale_after=stale_after,
            dead_maxlen=dead_maxlen,
            partitions=partitions,
            lease=lease,
        )

    @property
    def lease_ms(self) -> int:
        """`lease` in whole milliseconds."""
        return max(1, round(self.lease * 1000))

    @property
    def renew_every(self) -> float:
        """Seconds between two renewals of a lease (and two membership heartbeats)."""
        return self.lease / 3

    @property
    def lease_margin(self) -> float:
        """Seconds before a lease can expire at which its owner stops using it (the fence)."""
        return self.lease / 5

    @property
    def block_ms(self) -> int:
        """`block` in whole milliseconds (at least 1: 0 would block forever)."""
        return max(1, round(self.block * 1000))

    @property
    def claim_after_ms(self) -> int:
        """`claim_after` in whole milliseconds."""
        return max(1, round(self.claim_after * 1000))


@attrs.frozen
class Keys:
    """The Redis keys of one application; every one starts with ``{prefix}:app:{app}:``.

    With `partitions` > 1, every key of partition ``p`` (its stream, the leases, fencing
    epochs and save counters of its groups, the durable states of its keys) holds the
    partition's hash tag, ``{base}{{tag}}:…`` with the tag of `partition_tag`, so that
    they share one Redis Cluster slot and one script may use them all. With one
    partition, the stream is ``…:events`` (the layout of versions without partitions),
    and the other keys of the partition (those of entity kinds, whose groups are owned
    even then) take the stream's name as their hash tag, ``{base}{{{base}events}}:…``:
    the stream's own slot.
    """

    prefix: str
    app: str
    partitions: int = 1

    @property
    def base(self) -> str:
        """The common start of the application's keys (what an ACL pattern grants)."""
        return f"{self.prefix}:app:{self.app}:"

    @property
    def events(self) -> str:
        """The stream of every APP event of the application."""
        return f"{self.base}events"

    @property
    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.base}dead"

    def stream(self, partition: int) -> str:
        """The events stream of `partition` (the one stream, without partitions)."""
        if self.partitions == 1:
            return self.events
        return f"{self._of(partition)}events"

    @property
    def streams(self) -> tuple[str, ...]:
        """Every events stream, partition 0 first."""
        return tuple(self.stream(partition) for partition in range(self.partitions))

    def lease(self, partition: int, group: str) -> str:
        """Who owns `partition` of Redis consumer group `group` (expires with the lease)."""
        return f"{self._of(partition)}lease:{group}"

    def epoch(self, partition: int, group: str) -> str:
        """The fencing counter of `partition` of `group`: one more at each acquisition."""
        return f"{self._of(partition)}epoch:{group}"

    def saves(self, partition: int, group: str) -> str:
        """The count of the states saved in `partition` for `group`: one more per save."""
        return f"{self._of(partition)}saves:{group}"

    def state(self, partition: int, namespace: str, key: str) -> str:
        """The durable state of `key` in `namespace`, whose partition is `partition`."""
        return f"{self._of(partition)}state:{namespace}:{key}"

    def members(self, group: str) -> str:
        """The live members of Redis consumer group `group`: a sorted set of expiry times."""
        return f"{self.base}members:{group}"

    @property
    def meta(self) -> str:
        """The application's layout as recorded in Redis (its number of partitions)."""
        return f"{self.base}meta"

    def _of(self, partition: int) -> str:
        if self.partitions == 1:
            return f"{self.base}{{{self.events}}}:"
        return f"{self.base}{{{partition_tag(self.app, partition, self.partitions)}}}:"

    def replies(self, instance: str) -> str:
        """The stream an instance reads the replies to its requests from."""
        return f"{self.base}replies:{instance}"

    def alive(self, instance: str) -> str:
        """The heartbeat key a running instance keeps refreshing (with a time to live)."""
        return f"{self.base}alive:{instance}"


def broadcast_group(instance: str) -> str:
    """The consumer group through which `instance` receives every event."""
    return f"b:{instance}"


def member_group(group: str) -> str:
    """The consumer group shared by the members of a competing-consumer `group`."""
    return f"g:{group}"


def anonymous_instance() -> str:
    """A fresh random instance name, marked as anonymous (not durable)."""
    return f"{_ANONYMOUS}{secrets.token_hex(6)}"


def is_anonymous(instance: str) -> bool:
    """Whether `instance` is a random name given to an instance started without one."""
    return instance.startswith(_ANONYMOUS)


def check_instance(instance: str) -> str:
    """Validate a durable instance name; return it.

    Raises:
        ValueError: If it is empty, too long, or has characters other than ASCII letters,
            digits, ``_``, ``.`` and ``-`` (it becomes part of key and group names).
    """
    if not isinstance(instance, str) or not _INSTANCE.fullmatch(instance):
        msg = (
            f"invalid instance name {instance!r}: use 1-100 ASCII letters, digits, '_', '.' "
            "or '-', starting with a letter or digit (e.g. 'worker-1'); it must be unique "
            "among the running instances of the application"
        )
        raise ValueError(msg)
    return instance


def parse_id(raw: bytes | str) -> StreamId:
    """Read a stream id (``b"1700000000000-3"``) as a comparable pair."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    millis, _, sequence = text.partition("-")
    return int(millis), int(sequence or 0)


def format_id(value: StreamId) -> str:
    """The text form of a stream id."""
    return f"{value[0]}-{value[1]}"


def check_url(url: str) -> str:
    """Validate a Redis URL early, with a message that says what is expected.

    Messages never show a URL that cannot be read reliably: a password with an unescaped
    ``/``, ``?``, ``#`` or ``@`` spills into the parts shown.

    Raises:
        ValueError: For anything but ``redis://``, ``rediss://`` or ``unix://`` URLs, a
            port that is not a number, a path other than a database number, a fragment,
            or a query argument the transport does not read (a typo in a TLS option
            would otherwise silently weaken or break TLS).
    """
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in ("redis", "rediss", "unix"):
        msg = (
            f"not a Redis URL: {redact_url(str(url))!r}; use redis://[[user]:password@]host"
            "[:port][/db], rediss:// for TLS, or unix:///path/to/socket"
        )
        raise ValueError(msg)
    problem = _malformed(url)
    if problem is not None:
        msg = f"invalid Redis URL {redact_url(url)!r}: {problem}"
        raise ValueError(msg)
    return url


def _malformed(url: str) -> str | None:
    """What is wrong with `url` (without quoting any part of it), or None."""
    parts = urlsplit(url)
    if "#" in url:
        return f"it contains '#'; {_ESCAPE}"
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        return f"its port is not a number; {_ESCAPE}"
    if parts.scheme != "unix" and not _DB_PATH.fullmatch(parts.path):
        return f"its path must be the database number (/0) or nothing; {_ESCAPE}"
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        return f"its query is not name=value arguments separated by '&'; {_ESCAPE}"
    unknown = sorted(set(query) - _URL_OPTIONS)
    if unknown:
        named = ", ".join(repr(name) for name in unknown if name.isidentifier()) or "(unreadable)"
        known = ", ".join(sorted(_URL_OPTIONS))
        return f"unknown query argument {named}; the transport reads {known}"
    if any(not value.isdigit() for value in query.get("db", ())):
        return "its db argument must be a number"
    return None


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***``, for logs, errors and reprs.

    A URL whose password spilled out of the user-info part (an unescaped ``/``, ``?``,
    ``#`` or ``@``) is shown as its scheme only.
    """
    parts = urlsplit(url)
    if "@" in url and "@" not in parts.netloc and _malformed(url) is not None:
        return f"{parts.scheme}://(the rest is hidden: it may contain a password)"
    if parts.password is not None:
        location = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{location}")
    parts = parts._replace(query=_QUERY_PASSWORD.sub(r"\1***", parts.query))
    return urlunsplit(parts)


def scrub(text: str, url: str) -> str:
    """`text` with the password of `url` (if any, as written or decoded) replaced by ``***``."""
    parts = urlsplit(url)
    found = [parts.password or "", *parse_qs(parts.query).get("password", ())]
    for secret in sorted({*found, *map(unquote, found)} - {""}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
