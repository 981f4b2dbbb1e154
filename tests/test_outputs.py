"""Atomic outputs (issue 13, case 1): a writer killed mid-write leaves no partial file under the final name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medground_eval.outputs import (
    DIRECTORY_MARKER,
    atomic_directory,
    atomic_write_bytes,
    atomic_write_text,
    open_atomic,
)

ROOT = Path(__file__).resolve().parents[1]


def _start_writer(script: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, env=env, text=True)


def _kill_after_start(process: subprocess.Popen, sig: int) -> None:
    assert process.stdout.readline().strip() == "started"  # the writer has written its first lines
    process.send_signal(sig)
    process.wait(timeout=30)
    assert process.returncode != 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_file_writer_leaves_no_file_under_final_name(tmp_path, sig):
    final = tmp_path / "sub" / "all.jsonl"
    process = _start_writer(f"""
        import sys, time
        from medground_eval.outputs import open_atomic
        with open_atomic({str(final)!r}) as handle:
            for i in range(1000):
                handle.write('{{"id": %d}}\\n' % i)
            handle.flush()
            print("started", flush=True)
            time.sleep(60)
    """)
    _kill_after_start(process, sig)
    assert not final.exists()
    leftovers = list(final.parent.iterdir())
    assert all(p.name.startswith(".all.jsonl.") and p.name.endswith(".tmp") for p in leftovers)
    if sig != signal.SIGKILL:  # an exception / signal the process survives long enough to clean up
        assert sig == signal.SIGTERM or not leftovers


def test_killed_writer_keeps_the_previous_complete_file(tmp_path):
    final = tmp_path / "metrics.json"
    final.write_text('{"old": true}\n')
    process = _start_writer(f"""
        import time
        from medground_eval.outputs import open_atomic
        with open_atomic({str(final)!r}) as handle:
            handle.write('{{"new": ')
            handle.flush()
            print("started", flush=True)
            time.sleep(60)
    """)
    _kill_after_start(process, signal.SIGKILL)
    assert json.loads(final.read_text()) == {"old": True}


def test_killed_directory_writer_leaves_no_report_folder(tmp_path):
    final = tmp_path / "report"
    process = _start_writer(f"""
        import time
        from medground_eval.outputs import atomic_directory
        with atomic_directory({str(final)!r}) as out:
            (out / "metrics.json").write_text("{{}}")
            (out / "acc_curve.png").write_bytes(b"png")
            print("started", flush=True)
            time.sleep(60)
    """)
    _kill_after_start(process, signal.SIGKILL)
    assert not final.exists()


def test_exception_inside_the_block_removes_the_temporary(tmp_path):
    final = tmp_path / "a" / "b" / "out.csv"
    with pytest.raises(RuntimeError):
        with open_atomic(final) as handle:
            handle.write("id,iou\n")
            raise RuntimeError("disk full")
    assert not final.exists() and list(final.parent.iterdir()) == []
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "rep") as out:
            (out / "x.txt").write_text("x")
            raise RuntimeError("plot failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_complete_writes_create_parents_and_get_normal_permissions(tmp_path):
    atomic_write_text(tmp_path / "x" / "y.json", "{}\n")
    atomic_write_bytes(tmp_path / "x" / "z.bin", b"\x00\x01")
    assert (tmp_path / "x" / "y.json").read_text() == "{}\n"
    assert (tmp_path / "x" / "z.bin").read_bytes() == b"\x00\x01"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x" / "y.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y.json", "z.bin"]


def test_dash_is_standard_output(capsys):
    atomic_write_text("-", "hello\n")
    with open_atomic("-") as handle:
        handle.write("world\n")
    assert capsys.readouterr().out == "hello\nworld\n"
    with pytest.raises(ValueError, match="standard output"):
        with atomic_directory("-"):
            pass


def test_directory_replaces_an_earlier_output_but_never_a_user_folder(tmp_path):
    final = tmp_path / "report"
    with atomic_directory(final) as out:
        (out / "old.png").write_bytes(b"1")
    with atomic_directory(final) as out:
        (out / "new.png").write_bytes(b"2")
    assert sorted(p.name for p in final.iterdir()) == [DIRECTORY_MARKER, "new.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary or old folder left
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not written by medground-eval"):
        with atomic_directory(user):
            pass
    assert (user / "thesis.tex").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty) as out:
        (out / "a").write_text("a")
    assert (empty / "a").is_file()
