"""Per-source JSON state files that let counters and credit ledgers survive restarts.

The caller turns a snapshot into JSON with `json_pieces`, a short `json` call per piece, on the
event loop between its other work (`exporter.persistence`); `save` hands the encoded pieces to
one writer thread and returns. The thread only hashes and writes bytes, which releases the GIL:
a writer thread that encoded 9 MB of state itself held the GIL for 5 ms at a time, and the event
loop waited that long each time it wanted it back (stalls of 40 to 60 ms, measured). It writes
only when the bytes differ from what the file holds. Snapshots of one source that queue up while
the thread is busy collapse into the newest, so a source is written at most once per save
however slow the disk is.

A write goes to a temporary file that is flushed and fsynced, then renamed over the state file,
so a killed process leaves either the old file or the new one; a failed write removes its
temporary file, and temporaries a killed process left behind are removed when the directory is
opened. A file that is not JSON or not the shape below (hand-edited, truncated by a full disk
before this scheme, written by another program) is moved aside to `<name>.corrupt` with one log
line, and the source starts afresh: a bad state file never stops the exporter.

    {"counters": [{"name": "livestream_sessions_total", "labels": [], "unit": "daywise",
                   "parts": {"folded": 120, "2024-07-01": 7, "2024-07-02": 2}}],
     "provider": {"covered_day": "2024-07-02"}}
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

log = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".tmp"
PIECE_ITEMS = 256
"""Scalars turned into JSON in one `json` call (well under 1 ms)."""

CounterTotal = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _CounterEntry(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True)  # type: ignore[misc]
    name: str
    labels: list[tuple[str, str]]
    parts: dict[str, CounterTotal]
    unit: NotRequired[str | None]


class _StateFile(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(strict=True)  # type: ignore[misc]
    counters: list[_CounterEntry]
    provider: dict[str, Any] | None


_STATE_FILE = TypeAdapter(_StateFile)
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def json_pieces(value: Any) -> Iterator[str]:
    """`value` as JSON, in pieces that each cost one short `json` call, so whoever iterates can
    hand the event loop back between them: a large list or object is encoded a batch of items at
    a time, weighing each item by its own length (PIECE_ITEMS scalars, or a few dozen units'
    remembered samples), and an item larger than that is opened in turn; a small container that
    holds containers (the top of a state file) is opened one level at a time."""
    if not isinstance(value, dict | list | tuple):
        yield _ENCODER.encode(value)
        return
    is_dict = isinstance(value, dict)
    items: list[Any] = list(value.items()) if is_dict else list(value)
    opening, closing = ("{", "}") if is_dict else ("[", "]")
    if len(items) <= PIECE_ITEMS:
        values = [item[1] for item in items] if is_dict else items
        if not any(isinstance(item, dict | list | tuple) for item in values):
            yield _ENCODER.encode(value)
            return
        yield opening
        for index, item in enumerate(items):
            if is_dict:
                yield ("," if index else "") + _ENCODER.encode(str(item[0])) + ":"
                yield from json_pieces(item[1])
            else:
                if index:
                    yield ","
                yield from json_pieces(item)
        yield closing
        return
    yield opening
    batch: list[Any] = []
    weight = 0
    first = True
    for item in items:
        inner = item[1] if is_dict else item
        size = len(inner) if isinstance(inner, dict | list | tuple) else 1
        if size > PIECE_ITEMS:
            if batch:
                yield ("" if first else ",") + _encode_items(batch, is_dict)
                batch, weight, first = [], 0, False
            if is_dict:
                yield ("" if first else ",") + _ENCODER.encode(str(item[0])) + ":"
            elif not first:
                yield ","
            yield from json_pieces(inner)
            first = False
            continue
        batch.append(item)
        weight += size
        if weight >= PIECE_ITEMS:
            yield ("" if first else ",") + _encode_items(batch, is_dict)
            batch, weight, first = [], 0, False
    if batch:
        yield ("" if first else ",") + _encode_items(batch, is_dict)
    yield closing


def _encode_items(batch: list[Any], is_dict: bool) -> str:
    """The items of `batch` as JSON without the brackets around them."""
    return _ENCODER.encode(dict(batch) if is_dict else batch)[1:-1]


def encoded(data: Any) -> list[bytes]:
    """`data` as the pieces `StateFiles.save` takes, in one go (a small state)."""
    return [piece.encode() for piece in json_pieces(data)]


def read_regular_file(path: Path) -> bytes:
    """The file's bytes, or OSError when it is no regular file: it is opened without blocking and
    checked before a byte is read, as a FIFO would block the start forever and a device such as
    `/dev/zero` would be read without end."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


class StateFiles:
    """The state directory: `load` at a source's start, `save` after each poll, `close` at shutdown
    (it writes what is still queued; `flush` waits for that without stopping the writer)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._pending: dict[str, list[bytes]] = {}
        self._writing: str | None = None
        self._written: dict[str, bytes] = {}
        """Digest of what each source's file holds, so an unchanged snapshot is not written again."""
        self._condition = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closing = False
        self._warned = False
        self._remove_temporaries()

    def path(self, source: str) -> Path:
        return self.directory / f"{source}.json"

    def _remove_temporaries(self) -> None:
        """Temporary files a killed process left (`.<source>.json.<random>.tmp`) are ours alone."""
        try:
            strays = [p for p in self.directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
        except OSError:
            return
        for stray in strays:
            try:
                stray.unlink()
            except OSError as error:
                log.warning("cannot remove a temporary state file", extra={"file": str(stray), "error": error.strerror})

    def load(self, source: str) -> dict[str, Any]:
        """The source's saved state, or {} when there is none or it cannot be used. A save of the
        source still queued is written first (a source restarted by a reload continues from it)."""
        with self._condition:
            self._condition.wait_for(lambda: source not in self._pending and self._writing != source)
        path = self.path(source)
        try:
            raw = read_regular_file(path)
        except FileNotFoundError:
            return {}
        except OSError as error:
            log.warning(
                "state file unreadable, starting fresh",
                extra={"file": str(path), "error": error.strerror or str(error)},
            )
            return {}
        try:
            data = _STATE_FILE.validate_json(raw)
        except ValidationError as error:
            self._move_aside(path, _first_problem(error))
            return {}
        self._written[source] = hashlib.blake2b(raw).digest()
        return dict(data)

    def _move_aside(self, path: Path, problem: str) -> None:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
        except OSError as error:
            log.warning(
                "state file unusable and cannot be moved aside, starting fresh",
                extra={"file": str(path), "problem": problem, "error": error.strerror or str(error)},
            )
            return
        log.warning(
            "state file unusable, moved aside, starting fresh",
            extra={"file": str(path), "moved_to": str(aside), "problem": problem},
        )

    def save(self, source: str, pieces: list[bytes]) -> None:
        """Queue the state in its JSON form (`json_pieces`, encoded) to be written; returns at
        once. The pieces are never joined here: the writer thread hashes and writes them as they
        are, work that releases the GIL, so it does not compete with the event loop."""
        with self._condition:
            if self._closing:
                return
            self._pending[source] = pieces
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_queued, name="state-writer", daemon=True)
                self._writer.start()
                atexit.register(self.close)
            self._condition.notify_all()

    def flush(self) -> None:
        """Wait until everything queued so far is written (or failed)."""
        with self._condition:
            self._condition.wait_for(lambda: not self._pending and self._writing is None)

    def close(self) -> None:
        """Write what is queued, then stop the writer; later saves are ignored."""
        with self._condition:
            self._closing = True
            writer = self._writer
            self._condition.notify_all()
        if writer is not None:
            writer.join()
            atexit.unregister(self.close)

    def _write_queued(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    self._condition.notify_all()
                    return
                source = next(iter(self._pending))
                pieces = self._pending.pop(source)
                self._writing = source
            try:
                self._write(source, pieces)
            except Exception as error:
                self._warn_once(error)
            finally:
                with self._condition:
                    self._writing = None
                    self._condition.notify_all()

    def _write(self, source: str, chunks: list[bytes]) -> None:
        hashing = hashlib.blake2b()
        for chunk in chunks:
            hashing.update(chunk)
        digest = hashing.digest()
        if self._written.get(source) == digest:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{source}.json.", suffix=TEMPORARY_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.writelines(chunks)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path(source))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._written[source] = digest
        self._sync_directory()

    def _sync_directory(self) -> None:
        """Make the rename itself durable (a power cut could otherwise bring back the old file)."""
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _warn_once(self, error: Exception) -> None:
        if self._warned:
            log.debug("state file write failed again", extra={"state_dir": str(self.directory), "error": str(error)})
            return
        self._warned = True
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        log.warning(
            "cannot write state file; counters will restart from the vendor's totals",
            extra={"state_dir": str(self.directory), "error": reason},
        )


def _first_problem(error: ValidationError) -> str:
    """One line: where in the file, and what is wrong there."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
