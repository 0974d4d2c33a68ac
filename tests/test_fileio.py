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


def test_read_json_names_the_file_and_what_it_is(tmp_path):
    from orchestrion.errors import DataError
    from orchestrion.fileio import read_json

    good = tmp_path / "good.json"
    atomic_write_text(good, '{"a": [1, 2]}')
    assert read_json(good, "index", DataError) == {"a": [1, 2]}
    with pytest.raises(DataError, match=r"missing\.json: index not found"):
        read_json(tmp_path / "missing.json", "index", DataError)
    (tmp_path / "bad.json").write_bytes(b"{not json")
    with pytest.raises(DataError, match=r"bad\.json: index is not valid JSON"):
        read_json(tmp_path / "bad.json", "index", DataError)
