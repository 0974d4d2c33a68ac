"""Checkpoint format: exact round trip, and clear refusals of damaged or foreign ones."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from orchestrion.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from orchestrion.config import register_config
from orchestrion.errors import CheckpointError


@register_config("tests.checkpoint_mlp")
@dataclass(frozen=True)
class MLPConfig:
    width: int = 8
    depth: int = 2
    names: tuple[str, ...] = ("a", "b")


def build(config: MLPConfig) -> nn.Module:
    layers = [nn.Linear(4, config.width)] + [nn.Linear(config.width, config.width) for _ in range(config.depth - 1)]
    return nn.Sequential(*layers, nn.BatchNorm1d(config.width))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = MLPConfig()
    model = build(config)
    model(torch.randn(5, 4))  # give BatchNorm non-trivial running stats
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    rng = torch.get_rng_state()
    state = {"step": 5, "optimizer": optimizer.state_dict(), "rng": rng, "nested": (1, [2.5, "x"])}
    torch.rand(3)  # the live generator moves on; the saved state must not
    path = save_checkpoint(tmp_path / "ckpt", config=config, modules={"mlp": model}, state=state)
    return path, config, model, optimizer, rng


def test_round_trip_is_exact(saved):
    path, config, model, optimizer, rng = saved
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "tests.checkpoint_mlp" and ckpt.config == config
    fresh = build(ckpt.config)
    ckpt.load_into("mlp", fresh)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    state = ckpt.training_state()
    assert state["step"] == 5 and state["nested"] == (1, [2.5, "x"])
    assert state["rng"].dtype == torch.uint8 and torch.equal(state["rng"], rng)
    assert not torch.equal(state["rng"], torch.get_rng_state())
    reloaded = torch.optim.Adam(fresh.parameters())
    reloaded.load_state_dict(state["optimizer"])
    for a, b in zip(reloaded.state_dict()["state"].values(), optimizer.state_dict()["state"].values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_run_dir_resolves_to_latest(tmp_path):
    config = MLPConfig()
    for step in (2, 10, 4):
        save_checkpoint(tmp_path / "checkpoints" / f"step_{step:08d}", config=config, modules={"mlp": build(config)})
    assert resolve_checkpoint(tmp_path).name == "step_00000010"


def test_truncated_file_is_refused(saved):
    path = saved[0]
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_tampered_file_is_refused(saved):
    path = saved[0]
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_config_not_matching_weights_is_refused(saved):
    path = saved[0]
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        ckpt.load_into("mlp", build(MLPConfig(width=16)))
    with pytest.raises(CheckpointError, match="missing"):
        ckpt.load_into("mlp", build(MLPConfig(depth=3)))


def test_edited_config_is_refused(saved):
    path = saved[0]
    header = json.loads((path / "config.json").read_text())
    header["config"]["width"] = "wide"
    (path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_unknown_kind_and_missing_dir(tmp_path, saved):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(saved[0], expected_kind="musika.level1")


def test_interrupted_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    config = MLPConfig()
    path = save_checkpoint(tmp_path / "ckpt", config=config, modules={"mlp": build(config)})
    before = (path / "model.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt  # a kill in the middle of writing the weights

    monkeypatch.setattr("orchestrion.checkpoint.save_file", explode)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, config=config, modules={"mlp": build(MLPConfig(width=32))})
    assert (path / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "no temporary directory is left behind"
    load_checkpoint(path)


def test_cli_reports_bad_checkpoint_without_traceback(saved):
    path = saved[0]
    (path / "model.safetensors").write_bytes(b"garbage")
    result = subprocess.run(
        [sys.executable, "-m", "orchestrion.cli", "inspect", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr
