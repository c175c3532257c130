"""TLS for the Redis bridge: the SSL context of a ``rediss://`` URL, and why a connection failed.

actorbus builds the context itself, with safe defaults: the server's certificate must be
valid and name the URL's host (some clients' defaults for ``rediss://`` skip the host
name check, so any certificate their authorities signed, for any name, would do).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

from actorbus.redis._config import TLS_OPTIONS, redact_url
from actorbus.redis._errors import AuthenticationFailed

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["connect_failure", "tls_advice", "tls_context"]

_CERT_REQS: Final = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}
_FLAGS: Final = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH: Final = frozenset({62, 64})


def tls_context(url: str, ssl_context: ssl.SSLContext | None = None) -> ssl.SSLContext | None:
    """The SSL context a transport for `url` connects with; None for plain connections.

    For ``rediss://`` it is `ssl_context` when given, else one built from the URL's query
    arguments with safe defaults: the server's certificate must be valid and name the
    URL's host. ``ssl_ca_certs`` (a PEM file or a directory) replaces the system's
    certificate authorities; ``ssl_certfile`` and ``ssl_keyfile`` give a client
    certificate; ``ssl_cert_reqs=none`` and ``ssl_check_hostname=false`` turn the checks off.

    Raises:
        ValueError: For TLS options without ``rediss://``, options both in the URL and as
            `ssl_context`, an invalid option value, or a file that cannot be loaded.
    """
    where = redact_url(url)
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    options: dict[str, str] = {name: query[name][-1] for name in TLS_OPTIONS if name in query}
    if parts.scheme != "rediss":
        if ssl_context is not None or options:
            msg = f"TLS options (ssl_context=, ssl_* URL arguments) need a rediss:// URL: {where}"
            raise ValueError(msg)
        return None
    if ssl_context is not None:
        if options:
            msg = (
                f"TLS options both in the URL and as ssl_context=: {where}; give them one way "
                "(the context is used as it is)"
            )
            raise ValueError(msg)
        return ssl_context
    mode = _CERT_REQS.get(options.get("ssl_cert_reqs", "required").lower())
    if mode is None:
        msg = f"ssl_cert_reqs must be required, optional or none: {where}"
        raise ValueError(msg)
    default_check = "false" if mode is ssl.CERT_NONE else "true"
    check_hostname = _FLAGS.get(options.get("ssl_check_hostname", default_check).lower())
    if check_hostname is None:
        msg = f"ssl_check_hostname must be true or false: {where}"
        raise ValueError(msg)
    if check_hostname and mode is ssl.CERT_NONE:
        msg = f"ssl_check_hostname=true needs certificate verification (ssl_cert_reqs): {where}"
        raise ValueError(msg)
    return _build_context(options, mode, check_hostname=check_hostname, where=where)


def _build_context(
    options: dict[str, str], mode: ssl.VerifyMode, *, check_hostname: bool, where: str
) -> ssl.SSLContext:
    ca = options.get("ssl_ca_certs")
    name, path = "ssl_ca_certs", ca
    try:
        if ca is None:
            context = ssl.create_default_context()
        elif Path(ca).is_dir():
            context = ssl.create_default_context(capath=ca)
        else:
            context = ssl.create_default_context(cafile=ca)
        certfile = options.get("ssl_certfile")
        if certfile is not None or "ssl_keyfile" in options:
            name, path = "ssl_certfile", certfile
            if certfile is None:
                msg = f"ssl_keyfile needs ssl_certfile (the client certificate): {where}"
                raise ValueError(msg)
            context.load_cert_chain(certfile, options.get("ssl_keyfile"))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        msg = f"cannot load {name}={path!r} for Redis at {where}: {reason}"
        raise ValueError(msg) from None
    context.check_hostname = check_hostname
    context.verify_mode = mode
    return context


def connect_failure(
    error: BaseException, where: str, describe: Callable[[BaseException], str]
) -> str:
    """Why the first connection failed, and what to do, as a `TransportError` message.

    `describe` says what an error that is not about TLS means (`Health.describe`).
    """
    start = f"cannot connect to Redis at {where}: "
    advice = tls_advice(error)
    if advice is not None:
        return start + advice
    described = describe(error)
    if isinstance(error, AuthenticationFailed):
        return start + (
            f"{described}; check the user name and password in the URL (percent-escape "
            "special characters in them)"
        )
    return start + described


def tls_advice(error: BaseException, *, cut_short: bool = True) -> str | None:
    """What failed in TLS behind `error`, and what to check; None if TLS is not the cause.

    With `cut_short` False, a handshake that ended because the connection closed gets
    no advice either: a server restarting (or a connection dropped halfway) does that,
    and it says nothing about the TLS set-up.
    """
    tls = _tls_error(error)
    if not cut_short and _closed_early(tls):
        return None
    if isinstance(tls, ssl.SSLCertVerificationError):
        if tls.verify_code in _NAME_MISMATCH:
            return (
                f"the server's TLS certificate is not valid for that host ({tls.verify_message})."
                " Connect with a host name or address the certificate lists"
            )
        return (
            f"the server's TLS certificate was rejected ({tls.verify_message}). Trust the "
            "certificate authority that signed it with ?ssl_ca_certs=/path/to/ca.pem in the "
            "URL, or give RedisTransport(ssl_context=...)"
        )
    if tls is not None:
        reason = getattr(tls, "reason", None) or tls  # set by the ssl module's own errors
        return (
            f"the TLS handshake failed ({reason}); check that the server speaks TLS on that "
            "port and the ssl_* options of the URL"
        )
    return None


def _closed_early(tls: ssl.SSLError | None) -> bool:
    return isinstance(tls, ssl.SSLEOFError | ssl.SSLZeroReturnError) or (
        getattr(tls, "reason", None) == "UNEXPECTED_EOF_WHILE_READING"
    )


def _tls_error(error: BaseException) -> ssl.SSLError | None:
    """The SSL error behind `error` (the client's `ConnectionLost` is caused by it), if any."""
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        if isinstance(found, ssl.SSLError):
            return found
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return None
