"""Large JSON answers decoded a slice at a time on the event loop.

One Gcore answer for a reseller account holds 100k to 1M clients (8 to 80 MB). Decoding it in
one call holds the event loop for 0.1 s to seconds with any decoder, and a worker thread does not
help: every decoder holds the GIL while it builds Python objects. ijson's C backend (yajl) builds
one array item at a time from a file-like reader, so the loop gets control back between slices of
items, each item dies young (the garbage collector never walks a 100k-object tree), and memory
never holds more than the body and one slice. Figures for each decoder are in the README's
"Performance" section.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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

    def __init__(self, body: bytes) -> None:
        self._body = memoryview(body)
        self._position = 0
        self._last_read_openings = 0
        self.openings = 0

    def read(self, size: int = -1) -> bytes:
        size = READ_BYTES if size < 0 else min(size, READ_BYTES)
        chunk = bytes(self._body[self._position : self._position + size])
        self._position += len(chunk)
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
