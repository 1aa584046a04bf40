"""Large JSON answers decoded a slice at a time on the event loop.

One Gcore answer for a reseller account holds 100k to 1M clients (8 to 80 MB). Decoding it in
one call holds the event loop for 0.1 s to seconds with any decoder, and a worker thread does not
help: every decoder holds the GIL while it builds Python objects. ijson's C backend (yajl) builds
one array item at a time from a file-like reader, so the loop gets control back between slices of
items, each item dies young (the garbage collector never walks a 100k-object tree), and memory
never holds more than the body and one slice. Figures for each decoder are in the README's
"Performance" section.

The other vendors answer one object around one list; `json_object_list` builds such an answer
from ijson's events, handing that list's items over one at a time, for the rare one that is large.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import ijson

ITEMS_PER_SLICE = 250
"""Array items decoded between two hand-backs to the event loop: about 1 ms of decoding and parsing."""
READ_BYTES = 4096
"""What the decoder reads at a time: small, so the nesting guard below is tight."""
MAX_OPENINGS_PER_ITEM = 2048
"""`[` and `{` allowed between two completed array items. ijson's work and memory grow with the
square of nesting depth (100k levels would take gigabytes), so an answer nesting deeper than
this is refused before it is decoded; a real item opens a handful (a Gcore client with a point per
bucket of a long window: a few hundred)."""


class NotJson(ValueError):
    """The body is not the JSON array expected; the message says why in a few words."""


class _GuardedReader:
    """The body as a file for ijson, counting brackets opened since the last completed item
    (inside strings too: an upper bound on the nesting, never below it)."""

    def __init__(self, body: bytes, *, guarded: bool = True) -> None:
        """`guarded=False`: no bracket counting, for a parse that counts its depth exactly."""
        self._body = memoryview(body)
        self._guarded = guarded
        self._position = 0
        self._last_read_openings = 0
        self.openings = 0

    def read(self, size: int = -1) -> bytes:
        size = READ_BYTES if size < 0 else min(size, READ_BYTES)
        chunk = bytes(self._body[self._position : self._position + size])
        self._position += len(chunk)
        if not self._guarded:
            return chunk
        self._last_read_openings = chunk.count(b"[") + chunk.count(b"{")
        self.openings += self._last_read_openings
        if self.openings > MAX_OPENINGS_PER_ITEM:
            raise NotJson(f"nested deeper than {MAX_OPENINGS_PER_ITEM} levels")
        return chunk

    def item_completed(self) -> None:
        """An item ended inside the chunk read last: only what opened since can still be open."""
        self.openings = self._last_read_openings


def is_json_array(body: bytes) -> bool:
    return body.lstrip(b" \t\r\n")[:1] == b"["


async def json_array_items(body: bytes) -> AsyncIterator[Any]:
    """The items of the top-level JSON array in `body`, decoded incrementally, handing the event
    loop back every ITEMS_PER_SLICE items. Numbers are int or float (never Decimal; an integer
    beyond 64 bits is malformed to yajl); a lone UTF-16 surrogate in a string comes out
    replaced. Raises NotJson when the body is not a JSON array (checked first, before anything is
    yielded), is malformed or nests too deep (on reaching it)."""
    if not is_json_array(body):
        raise NotJson("not a JSON array")
    reader = _GuardedReader(body)
    items = ijson.items(reader, "item", use_float=True, buf_size=READ_BYTES)
    count = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except ijson.JSONError as error:
            raise NotJson(str(error).split("\n")[0]) from None
        reader.item_completed()
        yield item
        count += 1
        if count % ITEMS_PER_SLICE == 0:
            await asyncio.sleep(0)


EVENTS_PER_SLICE = 1500
"""Parser events handled between two hand-backs to the event loop: about 250 small list items,
a few ms of building on this machine."""
MAX_DEPTH = MAX_OPENINGS_PER_ITEM
"""Objects and arrays open at once in an answer read by `json_object_list`; no vendor nests
more than a handful."""


class _Streamed:
    """Stands for the list whose items are handed over rather than kept."""


class _ObjectBuilder:
    """Builds a JSON value from ijson's basic events, like `json.loads`, except the list found at
    `path` (object keys from the top): each of its items goes to `consume` when complete and the
    list itself is left empty, so memory holds one item of it at a time."""

    def __init__(self, path: tuple[str, ...], consume: Callable[[Any], None]) -> None:
        self.path = list(path)
        self.consume = consume
        self.containers: list[Any] = []
        self.keys: list[str | None] = []
        self.root: Any = None

    def event(self, kind: str, value: Any) -> None:
        if kind == "map_key":
            self.keys[-1] = value
        elif kind == "start_map":
            self._open({})
        elif kind == "start_array":
            if self._at_path():
                self.containers[-1][self.keys[-1]] = []
                self._open(_Streamed())
            else:
                self._open([])
        elif kind in ("end_map", "end_array"):
            self.keys.pop()
            done = self.containers.pop()
            if not isinstance(done, _Streamed):
                self._put(done)
        else:
            self._put(value)

    def _open(self, container: Any) -> None:
        if len(self.containers) >= MAX_DEPTH:
            raise NotJson(f"nested deeper than {MAX_DEPTH} levels")
        self.containers.append(container)
        self.keys.append(None)

    def _at_path(self) -> bool:
        return (
            len(self.containers) == len(self.path)
            and self.keys == self.path
            and all(type(container) is dict for container in self.containers)
        )

    def _put(self, value: Any) -> None:
        if not self.containers:
            self.root = value
            return
        top = self.containers[-1]
        if type(top) is dict:
            top[self.keys[-1]] = value
        elif type(top) is list:
            top.append(value)
        else:
            self.consume(value)


async def json_object_list(body: bytes, path: tuple[str, ...], consume: Callable[[Any], None]) -> Any:
    """The JSON value of `body`, decoded incrementally, handing the event loop back every
    EVENTS_PER_SLICE parser events; the items of the list at `path` (keys from the top object
    down, e.g. `("data",)`) go to `consume` one at a time, in order, and that list comes back
    empty. Every other value is built whole: a vendor's envelope (`code`, `message`, labels),
    before or after the list. A body whose top is not an object is only checked, and gives None.
    Numbers and strings as in `json_array_items`. Raises NotJson when the body is malformed or
    nests deeper than MAX_DEPTH."""
    builder: _ObjectBuilder | _DepthCounter = _ObjectBuilder(path, consume)
    events = ijson.basic_parse(_GuardedReader(body, guarded=False), use_float=True, buf_size=READ_BYTES)
    count = 0
    try:
        for kind, value in events:
            if count == 0 and kind != "start_map":
                builder = _DepthCounter()
            builder.event(kind, value)
            count += 1
            if count % EVENTS_PER_SLICE == 0:
                await asyncio.sleep(0)
    except ijson.JSONError as error:
        raise NotJson(str(error).split("\n")[0]) from None
    return builder.root


class _DepthCounter:
    """Builds nothing and only counts nesting: what a body whose top is not an object (and so of
    no use) needs to be refused as malformed or too deep."""

    root = None

    def __init__(self) -> None:
        self.depth = 0

    def event(self, kind: str, value: Any) -> None:
        if kind in ("start_map", "start_array"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise NotJson(f"nested deeper than {MAX_DEPTH} levels")
        elif kind in ("end_map", "end_array"):
            self.depth -= 1
