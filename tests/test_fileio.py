"""Atomic writes keep the old file on failure and leave no temporaries."""

import pytest

from orchestrion.fileio import atomic_path, atomic_write_text


def test_success_replaces_and_keeps_suffix(tmp_path):
    target = tmp_path / "out.wav"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".wav" and tmp.parent == tmp_path
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_failure_keeps_old_content(tmp_path):
    target = tmp_path / "data.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]
