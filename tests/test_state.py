"""State files: round trips, writes off the caller's thread and only when something changed, one
write per source however many saves queue up, atomic replacement with no temporary file left by
a failure or a kill, and a file of the wrong shape moved aside instead of stopping the exporter."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from exporter import state as state_module
from exporter.state import StateFiles, encoded, json_pieces

GOOD = {
    "counters": [
        {"name": "livestream_sessions_total", "labels": [["a", "b"]], "parts": {"2024-07-01": 7.0}, "unit": "u"}
    ],
    "provider": {"covered_day": "2024-07-01"},
}


@pytest.fixture
def files(tmp_path: Path) -> Any:
    opened: list[StateFiles] = []

    def open_dir(directory: Path = tmp_path) -> StateFiles:
        state_files = StateFiles(str(directory))
        opened.append(state_files)
        return state_files

    yield open_dir
    for state_files in opened:
        state_files.close()


class Replaces:
    """Records each os.replace onto a state file, and the thread it ran on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[str] = []
        real = os.replace

        def replace(src: Any, dst: Any) -> None:
            self.threads.append(threading.current_thread().name)
            real(src, dst)

        monkeypatch.setattr(state_module.os, "replace", replace)


def test_saved_state_loads_back_equal(files) -> None:
    state_files = files()
    state_files.save("cf", encoded(GOOD))
    state_files.flush()
    assert files().load("cf") == {
        "counters": [
            {"name": "livestream_sessions_total", "labels": [("a", "b")], "parts": {"2024-07-01": 7.0}, "unit": "u"}
        ],
        "provider": {"covered_day": "2024-07-01"},
    }


def test_save_returns_before_writing_and_the_writer_thread_writes(files, tmp_path: Path, monkeypatch) -> None:
    replaces = Replaces(monkeypatch)
    state_files = files()
    state_files.save("cf", encoded(GOOD))
    state_files.flush()
    assert json.loads((tmp_path / "cf.json").read_text()) == GOOD
    assert replaces.threads and threading.current_thread().name not in replaces.threads


def test_an_unchanged_snapshot_is_not_written_again(files, monkeypatch) -> None:
    replaces = Replaces(monkeypatch)
    state_files = files()
    state_files.save("cf", encoded(GOOD))
    state_files.flush()
    state_files.save("cf", encoded(json.loads(json.dumps(GOOD))))
    state_files.flush()
    assert len(replaces.threads) == 1


def test_a_state_just_loaded_is_not_written_again_unchanged(files, monkeypatch) -> None:
    first = files()
    first.save("cf", encoded(GOOD))
    first.close()
    replaces = Replaces(monkeypatch)
    again = files()
    again.save("cf", encoded(again.load("cf")))
    again.flush()
    assert replaces.threads == []


def test_saves_queued_while_the_writer_is_busy_collapse_into_the_newest(files, tmp_path: Path, monkeypatch) -> None:
    writing, release = threading.Event(), threading.Event()
    replaces = Replaces(monkeypatch)
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        writing.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(state_module.os, "fsync", slow_fsync)
    state_files = files()
    state_files.save("cf", encoded({"provider": {"n": 1}}))
    assert writing.wait(10)
    for n in (2, 3, 4):
        state_files.save("cf", encoded({"provider": {"n": n}}))
    release.set()
    state_files.flush()
    assert len(replaces.threads) == 2
    assert json.loads((tmp_path / "cf.json").read_text()) == {"provider": {"n": 4}}


def test_close_writes_what_is_still_queued(files, tmp_path: Path) -> None:
    state_files = files()
    state_files.save("cf", encoded(GOOD))
    state_files.close()
    assert json.loads((tmp_path / "cf.json").read_text()) == GOOD


def test_load_waits_for_a_queued_save_of_the_same_source(files) -> None:
    state_files = files()
    state_files.save("cf", encoded(GOOD))
    assert state_files.load("cf")["provider"] == GOOD["provider"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(files, tmp_path: Path, monkeypatch, caplog) -> None:
    state_files = files()
    state_files.save("cf", encoded(GOOD))
    state_files.flush()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state_module.os, "fsync", disk_full)
    with caplog.at_level(logging.WARNING, logger="exporter.state"):
        state_files.save("cf", encoded({"provider": {"newer": True}}))
        state_files.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cf.json"]
    assert json.loads((tmp_path / "cf.json").read_text()) == GOOD
    assert [r.getMessage() for r in caplog.records] == [
        "cannot write state file; counters will restart from the vendor's totals"
    ]


def test_a_failed_rename_leaves_no_temporary(files, tmp_path: Path, monkeypatch) -> None:
    def refuse(src: Any, dst: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(state_module.os, "replace", refuse)
    state_files = files()
    state_files.save("cf", encoded(GOOD))
    state_files.flush()
    assert list(tmp_path.iterdir()) == []


def test_temporaries_a_killed_process_left_are_removed_and_other_files_kept(files, tmp_path: Path) -> None:
    (tmp_path / ".cf.json.k2j4_x9a.tmp").write_text('{"count')
    (tmp_path / ".sc.abcdefgh.tmp").write_text("{")
    for kept in ("cf.json", "cf.json.corrupt", "notes.tmp"):
        (tmp_path / kept).write_text("{}")
    files()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cf.json", "cf.json.corrupt", "notes.tmp"]


CORRUPT = {
    "not JSON": b"{not json",
    "not UTF-8": b'\xff\xfe{"counters": []}',
    "counters not a list": b'{"counters":"abc"}',
    "top level a list": b"[1, 2]",
    "an entry without parts": b'{"counters":[{"name":"n","labels":[]}]}',
    "a part that is a string": b'{"counters":[{"name":"n","labels":[],"parts":{"":"x"}}]}',
    "a part that is NaN": b'{"counters":[{"name":"n","labels":[],"parts":{"":NaN}}]}',
    "a negative part": b'{"counters":[{"name":"n","labels":[],"parts":{"":-1e9}}]}',
    "a part too large for a float": b'{"counters":[{"name":"n","labels":[],"parts":{"":2e308}}]}',
    "a label that is not a pair": b'{"counters":[{"name":"n","labels":[["a"]],"parts":{"":1}}]}',
    "provider state not an object": b'{"provider":[1]}',
    "JSON nested 100k deep": b"[" * 100_000 + b"]" * 100_000,
    "an object nested 100k deep": b'{"provider":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
}


@pytest.mark.parametrize("body", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_state_file_of_the_wrong_shape_is_moved_aside_with_one_line(files, tmp_path: Path, caplog, body) -> None:
    (tmp_path / "cf.json").write_bytes(body)
    with caplog.at_level(logging.WARNING):
        assert files().load("cf") == {}
    assert (tmp_path / "cf.json.corrupt").read_bytes() == body
    assert not (tmp_path / "cf.json").exists()
    [record] = caplog.records
    assert record.getMessage() == "state file unusable, moved aside, starting fresh"
    assert record.file == str(tmp_path / "cf.json")  # type: ignore[attr-defined]


def test_a_good_state_file_stays_where_it_is(files, tmp_path: Path) -> None:
    (tmp_path / "cf.json").write_text(json.dumps(GOOD))
    assert files().load("cf")["provider"] == GOOD["provider"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cf.json"]


def test_no_state_file_is_an_empty_state(files) -> None:
    assert files().load("cf") == {}


@pytest.mark.parametrize(
    "value",
    [
        {"counters": [{"name": "n", "labels": [["a", "b"]], "parts": {str(i): i for i in range(600)}}] * 700},
        {"provider": {"last": {f"k{i}": [[f"n{i}", [["t", "x"]], 1.5, ""]] for i in range(1000)}, "finished": []}},
        [{"a": [{"b": list(range(1000))}]}],
        {"a": {"b": {"c": [1] * 600}}, "d": [], "e": {}, "f": "x"},
        {"x": [[1] * 300, 2, [3] * 10, {"k": list(range(300))}, {}, []] * 100},
        {str(i): {"big": list(range(300))} if i % 7 == 0 else i for i in range(1000)},
        [],
    ],
)
def test_json_in_pieces_is_the_same_json(value: Any) -> None:
    assert json.loads("".join(json_pieces(value))) == json.loads(json.dumps(value))


def test_a_large_remembered_state_comes_in_pieces_each_one_short_json_call() -> None:
    unit = [["livestream_chat_messages", [["platform", "twitch"], ["channel", "c"]], 1.5, ""]] * 30
    value = {"provider": {"last": {f"twitch/c{i}/s/chat": unit for i in range(2000)}, "finished": []}}
    pieces = list(json_pieces(value))
    assert max(len(piece) for piece in pieces) < 40_000
    assert len(pieces) > 100
    assert json.loads("".join(pieces)) == json.loads(json.dumps(value))
