"""Atomic writes: the whole new file or the old one, and no temp file left behind."""

from __future__ import annotations

import pytest

from pytest_trt import files


def test_write_atomic_replaces_the_whole_file(tmp_path) -> None:
    target = tmp_path / "sub" / "data.json"
    files.write_atomic(target, "first")
    files.write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["data.json"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temp(tmp_path) -> None:
    target = tmp_path / "data.bin"
    files.write_atomic(target, b"old")

    def half_then_fail(stream) -> None:
        stream.write(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        files.write_atomic_with(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_an_interrupted_rename_leaves_no_temp(tmp_path, monkeypatch) -> None:
    def interrupted(source, destination) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(tmp_path / "data.bin", b"new")
    assert list(tmp_path.iterdir()) == []
