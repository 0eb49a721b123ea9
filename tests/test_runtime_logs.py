"""Container logs: Docker's json-file lines, partial lines, rotation, tail, since, follow."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from reconciler.runtime import logread, logs

T0 = 1_795_000_000_000_000_000  # a fixed clock: tests never depend on real time


def test_lines_are_docker_json_file_records(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    writer = logs.LogWriter(str(path))
    writer.write("stdout", b"hello\nwor", now_ns=T0)
    writer.write("stderr", b"oops\n", now_ns=T0 + 1)
    writer.write("stdout", b"ld\n", now_ns=T0 + 2)
    writer.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [
        {"log": "hello\n", "stream": "stdout", "time": logs.timestamp(T0)},
        {"log": "oops\n", "stream": "stderr", "time": logs.timestamp(T0 + 1)},
        {"log": "world\n", "stream": "stdout", "time": logs.timestamp(T0 + 2)},
    ]
    assert logs.timestamp(T0 + 2).endswith(".000000002Z")
    assert logread.parse_timestamp(logs.timestamp(T0 + 123456789)) == T0 + 123456789


def test_a_last_partial_line_is_kept_on_close_and_bad_utf8_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    writer = logs.LogWriter(str(path))
    writer.write("stdout", b"no newline \xff", now_ns=T0)
    assert path.read_text() == ""  # held until the line ends
    writer.close(now_ns=T0)
    (entry,) = logread.read(str(path))
    assert entry.text == "no newline \ufffd" and entry.stream == "stdout"


def test_rotation_keeps_max_files_and_reading_spans_them(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    writer = logs.LogWriter(str(path), max_size=200, max_files=3)
    for i in range(40):
        writer.write("stdout", f"line {i:02d}\n".encode(), now_ns=T0 + i)
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr.log", "ctr.log.1", "ctr.log.2"]
    assert all(p.stat().st_size <= 200 for p in tmp_path.iterdir())
    entries = logread.read(str(path))
    texts = [e.text for e in entries]
    assert texts == sorted(texts) and texts[-1] == "line 39\n"  # in order, newest kept
    assert len(texts) < 40  # the oldest were rotated away


def test_tail_and_since(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    writer = logs.LogWriter(str(path), max_size=150)
    for i in range(10):
        writer.write("stderr" if i % 2 else "stdout", f"{i}\n".encode(), now_ns=T0 + i)
    writer.close()
    assert [e.text for e in logread.read(str(path), tail=3)] == ["7\n", "8\n", "9\n"]
    assert logread.read(str(path), tail=0) == []
    assert [e.text for e in logread.read(str(path), since_ns=T0 + 8)] == ["8\n", "9\n"]
    assert [e.stream for e in logread.read(str(path), tail=2)] == ["stdout", "stderr"]


def test_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    writer = logs.LogWriter(str(path))
    writer.write("stdout", b"whole\n", now_ns=T0)
    writer.close()
    with path.open("a") as handle:
        handle.write('{"log": "cut sho')  # the writer died mid-record
    assert [e.text for e in logread.read(str(path))] == ["whole\n"]


def test_follow_sees_new_lines_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    writer = logs.LogWriter(str(path), max_size=300, max_files=2)
    writer.write("stdout", b"before\n", now_ns=T0)
    done = threading.Event()
    seen: list[str] = []

    def produce() -> None:
        for i in range(30):
            writer.write("stdout", f"live {i:02d}\n".encode(), now_ns=T0 + i + 1)
        writer.close()
        done.set()

    thread = threading.Thread(target=produce)
    follower = logread.follow(str(path), tail=1, stop=done.is_set, poll_seconds=0.005)
    seen.append(next(follower).text)  # history first: the last line before following
    thread.start()
    for entry in follower:
        seen.append(entry.text)
    thread.join(timeout=30)
    assert seen[0] == "before\n"
    live = seen[1:]
    assert live == sorted(live) and live[-1] == "live 29\n"
    assert len(set(live)) == len(live)


def test_writer_rejects_nonsense_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        logs.LogWriter(str(tmp_path / "x.log"), max_files=0)
