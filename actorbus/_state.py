"""An entity kind's durable state: its bytes (the wire's JSON), and the ones kept here.

`StateCodec` turns a kind's state class into bytes and back with the library's one
converter and the wire's JSON, so a state written by one instance (or one version) is
read by any other exactly as an event's data would be. `StateStore` keeps, per key, the
bytes last committed by an entity that is not live here any more: the state itself
when there is no transport (it lives in memory for the life of the system), else a
bounded cache of the newest commits, so that an entity built again soon after it stopped
never reads an older state than its own last commit from a transport that has not
written that one yet.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from ._convert import structure
from ._exceptions import DecodeError
from ._wire import decode_value, encode_value

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["StateCodec", "StateStore"]


class StateCodec:
    """Encodes and decodes the states of one entity kind (`Sharding(state=...)`)."""

    __slots__ = ("cls", "initial", "kind")

    def __init__(self, kind: str, cls: type[Any]) -> None:
        self.kind: str = kind
        self.cls: type[Any] = cls
        try:
            fresh = cls()
        except Exception as exc:
            msg = (
                f"entity kind {kind!r}: its state class {cls.__qualname__} must be built with "
                f"no arguments (the state of a key that has none yet): {exc}"
            )
            raise TypeError(msg) from exc
        self.initial: bytes = self.encode(fresh, "(a new key)")
        """The bytes of ``cls()``: the state of a key that has none yet."""

    def fresh(self) -> Any:
        """A new state for a key that has none yet."""
        return self.cls()

    def encode(self, state: object, key: str) -> bytes:
        """The bytes of `state`, the state of entity `key`.

        Raises:
            TypeError: If `state` is not an instance of the kind's state class, or holds
                a value JSON cannot carry (the message names the kind and the key).
        """
        if not isinstance(state, self.cls):
            msg = (
                f"entity {self.kind} {key!r}: self.state must be a {self.cls.__qualname__}, "
                f"got {type(state).__qualname__}"
            )
            raise TypeError(msg)
        try:
            return encode_value(state)
        except TypeError as exc:
            msg = (
                f"entity {self.kind} {key!r}: cannot save its state as JSON ({exc}); keep "
                "JSON-friendly fields in the state class (str, numbers, bools, lists, dicts, "
                "datetimes, nested attrs classes or dataclasses)"
            )
            raise TypeError(msg) from exc

    def decode(self, raw: bytes, key: str) -> Any:
        """The state `raw` holds, for entity `key`.

        Raises:
            DecodeError: If `raw` is not JSON or does not fit the state class (the message
                names the kind and the key).
        """
        where = f"entity {self.kind} {key!r} (its stored state)"
        try:
            data = decode_value(raw)
        except DecodeError as exc:
            msg = f"{where}: {exc}; the stored bytes start with {bytes(raw[:60])!r}"
            raise DecodeError(msg) from exc
        return structure(data, self.cls, where=where)


class StateStore:
    """The bytes last committed for keys that have no live entity here, by key.

    With `limit` None it keeps every key (the state itself, without a transport);
    otherwise the `limit` keys stored last (a cache in front of the transport). Each
    state is kept with the fencing token of the tenure that committed it, and given back
    in that tenure only.
    """

    __slots__ = ("_states", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit: int | None = limit
        self._states: collections.OrderedDict[str, tuple[bytes, int]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def get(self, key: str, token: int) -> bytes | None:
        """The bytes kept for `key` if they were committed in the tenure `token`, else None."""
        kept = self._states.get(key)
        if kept is None or kept[1] != token:
            return None
        return kept[0]

    def keep(self, key: str, raw: bytes, token: int) -> None:
        """Keep `raw`, committed in the tenure `token`, as `key`'s newest state.

        (Beyond `limit`, the states kept longest ago are forgotten.)
        """
        states = self._states
        states[key] = (raw, token)
        if self.limit is not None:
            states.move_to_end(key)
            while len(states) > self.limit:
                states.popitem(last=False)

    def forget(self, which: Callable[[str], bool]) -> None:
        """Forget every key for which `which` is true."""
        for key in [key for key in self._states if which(key)]:
            del self._states[key]
