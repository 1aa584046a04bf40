"""Per-source JSON state files that let counters and credit ledgers survive restarts.

`save` only hands the snapshot to one writer thread and returns: the thread turns it into JSON
in small pieces (each `json` call holds the GIL for well under a millisecond, so the event loop
gets it back between pieces), and writes only when the bytes differ from what the file holds.
Snapshots of one source that queue up while the thread is busy collapse into the newest, so a
source is written at most once per save however slow the disk is.

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
import time
from pathlib import Path
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

log = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".tmp"
PIECE_ITEMS = 256
"""Items of a large list or object turned into JSON in one `json` call (well under 1 ms)."""

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


def json_pieces(value: Any, pieces: list[str]) -> None:
    """Append `value` as JSON to `pieces`, a large list or object (more than PIECE_ITEMS items)
    PIECE_ITEMS items per `json` call, so no single call holds the GIL long, and after each such
    call hand the GIL over (`sleep(0)`) instead of making a waiting event loop wait out the
    interpreter's 5 ms switch interval. Containers are
    opened one level at a time while they are small, so large ones deeper down are sliced too."""
    if isinstance(value, dict):
        if len(value) <= PIECE_ITEMS and not any(isinstance(item, dict | list | tuple) for item in value.values()):
            pieces.append(_ENCODER.encode(value))
            return
        pieces.append("{")
        items = list(value.items())
        if len(items) > PIECE_ITEMS:
            for start in range(0, len(items), PIECE_ITEMS):
                pieces.append(("," if start else "") + _ENCODER.encode(dict(items[start : start + PIECE_ITEMS]))[1:-1])
                time.sleep(0)
        else:
            for index, (key, item) in enumerate(items):
                pieces.append(("," if index else "") + _ENCODER.encode(str(key)) + ":")
                json_pieces(item, pieces)
        pieces.append("}")
    elif isinstance(value, list | tuple) and len(value) > PIECE_ITEMS:
        pieces.append("[")
        for start in range(0, len(value), PIECE_ITEMS):
            pieces.append(("," if start else "") + _ENCODER.encode(list(value[start : start + PIECE_ITEMS]))[1:-1])
            time.sleep(0)
        pieces.append("]")
    elif isinstance(value, list | tuple) and any(isinstance(item, dict | list | tuple) for item in value):
        pieces.append("[")
        for index, item in enumerate(value):
            if index:
                pieces.append(",")
            json_pieces(item, pieces)
        pieces.append("]")
    else:
        pieces.append(_ENCODER.encode(value))


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
        self._pending: dict[str, dict[str, Any]] = {}
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

    def save(self, source: str, data: dict[str, Any]) -> None:
        """Queue `data` to be written; returns at once. `data` must not change afterwards (take a
        snapshot): the writer thread reads it later."""
        with self._condition:
            if self._closing:
                return
            self._pending[source] = data
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
                data = self._pending.pop(source)
                self._writing = source
            try:
                self._write(source, data)
            except Exception as error:
                self._warn_once(error)
            finally:
                with self._condition:
                    self._writing = None
                    self._condition.notify_all()

    def _write(self, source: str, data: dict[str, Any]) -> None:
        pieces: list[str] = []
        json_pieces(data, pieces)
        # Never joined: one 10 MB join or encode would hold the GIL for tens of ms.
        chunks = [piece.encode() for piece in pieces]
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
