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


def test_check_output_path_refuses_inputs_folders_and_existing_files(tmp_path):
    import pytest

    from orchestrion.errors import OrchestrionError
    from orchestrion.fileio import check_output_path

    source = tmp_path / "in.wav"
    source.write_bytes(b"x")
    with pytest.raises(OrchestrionError, match="is also the input"):
        check_output_path(source, overwrite=True, inputs=[source])
    with pytest.raises(OrchestrionError, match="is a folder"):
        check_output_path(tmp_path, overwrite=True)
    with pytest.raises(OrchestrionError, match="pass --overwrite"):
        check_output_path(source, overwrite=False)
    assert check_output_path(source, overwrite=True, inputs=[tmp_path / "other.wav"]) == source
    assert check_output_path(tmp_path / "new.wav", overwrite=False) == tmp_path / "new.wav"


def test_skip_report_writes_jsonl_and_fails_only_when_nothing_is_left(tmp_path):
    import json

    import pytest

    from orchestrion.errors import OrchestrionError
    from orchestrion.fileio import SkipReport

    report = SkipReport()
    report.require_some(1, "audio files")  # something usable: no error
    report.skip(tmp_path / "bad.wav", "not an audio file")
    with pytest.raises(OrchestrionError, match=r"no usable audio files \(1 skipped: .*bad.wav: not an audio file"):
        report.require_some(0, "audio files")
    lines = report.write(tmp_path / "report.jsonl").read_text().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == ["not an audio file"]
