"""Checkpoints on a real, shared, sometimes interrupted file system: permissions, killed saves,
re-saves, damaged manifests, folders that are not checkpoints at all."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from orchestrion import checkpoint as checkpoint_module
from orchestrion.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from orchestrion.errors import CheckpointError
from test_checkpoint import MLPConfig, build


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _save(path: Path, width: int = 8, step: int | None = None) -> Path:
    config = MLPConfig(width=width)
    state = None if step is None else {"step": step}
    return save_checkpoint(path, config=config, modules={"mlp": build(config)}, state=state)


@pytest.mark.parametrize(("umask", "dir_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664)])
def test_checkpoints_and_latents_get_the_users_umask_permissions(tmp_path, umask, dir_mode, file_mode) -> None:
    from orchestrion.musika.codec import LatentFile, save_latents

    old = os.umask(umask)
    try:
        path = _save(tmp_path / "run" / "checkpoints" / "step_00000001", step=1)
        save_latents(tmp_path / "latents" / "a.wav.safetensors", LatentFile(torch.zeros(1, 4, 64), 1, 256, 100))
    finally:
        os.umask(old)
    assert _mode(path) == dir_mode, "colleagues on a shared machine must be able to read the checkpoint"
    assert {p.name: _mode(p) for p in path.iterdir()} == {
        name: file_mode for name in ("config.json", "model.safetensors", "state.safetensors", "state.json",
                                     "manifest.json")
    }  # fmt: skip
    assert _mode(tmp_path / "latents" / "a.wav.safetensors") == file_mode


def test_the_next_save_removes_what_killed_saves_left_behind(tmp_path) -> None:
    folder = tmp_path / "checkpoints"
    _save(folder / "step_00000001")
    killed = folder / ".step_00000002.tmp-k1ll3d_x"  # a save killed while writing
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"\0" * 1000)
    emptied = folder / ".step_00000001.old-abcd_123"  # a re-save killed after it cleaned up
    emptied.mkdir()
    own = folder / ".notes"  # not ours: left alone
    own.mkdir()
    _save(folder / "step_00000003")
    assert sorted(p.name for p in folder.iterdir()) == [".notes", "step_00000001", "step_00000003"]


def test_resaving_swaps_atomically_and_a_killed_fallback_is_recovered(tmp_path, monkeypatch) -> None:
    path = _save(tmp_path / "ckpt", width=8)
    real_exchange = checkpoint_module._exchange

    def watched_exchange(a: Path, b: Path) -> bool:
        assert (b / "manifest.json").is_file(), "the old checkpoint is still in place until the swap"
        swapped = real_exchange(a, b)
        assert not swapped or (b / "manifest.json").is_file()
        return swapped

    monkeypatch.setattr(checkpoint_module, "_exchange", watched_exchange)
    _save(path, width=16)
    assert load_checkpoint(path).config.width == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    # where the file system cannot exchange, the old one is moved aside first; a kill between the
    # two renames leaves it there, and the next load puts it back (and says so)
    monkeypatch.setattr(checkpoint_module, "_exchange", lambda a, b: False)
    real_replace = os.replace

    def killed_after_moving_aside(src, dst):
        real_replace(src, dst)
        if Path(dst).name == "old":
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.os, "replace", killed_after_moving_aside)
    with pytest.raises(KeyboardInterrupt):
        _save(path, width=32)
    monkeypatch.setattr(checkpoint_module.os, "replace", real_replace)
    assert not path.exists()
    with pytest.warns(UserWarning, match="restored the checkpoint that an interrupted re-save had moved"):
        assert load_checkpoint(path).config.width == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def _edit_manifest(path: Path, edit) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_manifests_must_list_the_weights_and_config_with_sizes_and_hashes(tmp_path) -> None:
    path = _save(tmp_path / "ckpt")
    _edit_manifest(path, lambda m: m["files"].pop("model.safetensors"))
    with pytest.raises(CheckpointError, match=r"manifest.json does not list model.safetensors"):
        load_checkpoint(path)
    path = _save(tmp_path / "ckpt2")
    _edit_manifest(path, lambda m: m["files"].pop("config.json"))
    with pytest.raises(CheckpointError, match=r"does not list config.json"):
        load_checkpoint(path)
    path = _save(tmp_path / "ckpt3")
    _edit_manifest(path, lambda m: m["files"]["model.safetensors"].pop("bytes"))
    with pytest.raises(CheckpointError, match=r"entry for model.safetensors lacks its 'bytes' or 'sha256'"):
        load_checkpoint(path)
    path = _save(tmp_path / "ckpt4")
    (path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a checkpoint manifest"):
        load_checkpoint(path)


def test_a_token_dataset_given_as_model_says_what_it_is(tmp_path) -> None:
    dataset = tmp_path / "tokens"
    dataset.mkdir()
    (dataset / "manifest.json").write_text(json.dumps({"format": "orchestrion-token-dataset", "version": 1}))
    with pytest.raises(CheckpointError, match="is a 'orchestrion-token-dataset' folder, not a model checkpoint"):
        load_checkpoint(dataset)


def test_a_newest_step_without_manifest_is_named_with_the_step_used(tmp_path) -> None:
    for step in (2, 4, 6):
        _save(tmp_path / "checkpoints" / f"step_{step:08d}", step=step)
    (tmp_path / "checkpoints" / "step_00000006" / "manifest.json").unlink()
    expected = r"step 6 have no manifest.json \(a save that was interrupted, or a damaged copy\); using step 4"
    with pytest.warns(UserWarning, match=expected):
        assert resolve_checkpoint(tmp_path).name == "step_00000004"
