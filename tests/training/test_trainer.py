"""The shared trainer: resume after SIGKILL, accumulation, DDP, logging, safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_train
import torch
from safetensors.torch import load_file

from orchestrion.checkpoint import checkpoint_step_dirs
from orchestrion.errors import CheckpointError
from orchestrion.training import Trainer, TrainerConfig

SCRIPT = Path(tiny_train.__file__)


def run_script(run_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(run_dir), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("WEIGHTS")][-1].split()[2]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint_step_dirs(run_dir)[-1][1] / "model.safetensors"))


def make_trainer(run_dir: Path, **overrides) -> Trainer:
    config = tiny_train.TinyConfig(dropout=overrides.pop("dropout", 0.1))
    modules, optimizers = tiny_train.build(config, overrides.pop("optimizer", "adam"))
    defaults = dict(max_steps=8, batch_size=4, checkpoint_every=4, log_every=1, seed=3, progress=False)
    return Trainer(
        run_dir,
        model_config=config,
        modules=modules,
        optimizers=optimizers,
        step_fn=tiny_train.make_step(0.0),
        dataset=tiny_train.TinyData(),
        config=TrainerConfig(**{**defaults, **overrides}),
    )


def test_resume_after_sigkill_is_bit_exact(tmp_path):
    reference = run_script(tmp_path / "uninterrupted", "--steps", "12")

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(killed_dir), "--steps", "12", "--sleep", "0.25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (killed_dir / "checkpoints" / "step_00000004").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    steps_before = [step for step, _ in checkpoint_step_dirs(killed_dir)]
    assert steps_before and steps_before[-1] < 12

    resumed = run_script(killed_dir, "--steps", "12", "--resume")
    assert resumed == reference
    logged = [json.loads(line)["step"] for line in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 13)), "metrics.jsonl must have each step once after a resume"


def test_resume_with_data_workers_after_sigkill_matches(tmp_path):
    reference = run_script(tmp_path / "a", "--steps", "8")
    killed_dir = tmp_path / "b"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(killed_dir), "--steps", "8", "--workers", "2", "--sleep", "0.25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (killed_dir / "checkpoints" / "step_00000004").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert checkpoint_step_dirs(killed_dir)[-1][0] < 8
    assert run_script(killed_dir, "--steps", "8", "--resume", "--workers", "2") == reference


def test_gradient_accumulation_equals_big_batch(tmp_path):
    # plain SGD: a wrongly scaled accumulated gradient would show (Adam would hide it)
    make_trainer(tmp_path / "big", batch_size=8, grad_accum=1, dropout=0.0, optimizer="sgd").fit()
    make_trainer(tmp_path / "accum", batch_size=4, grad_accum=2, dropout=0.0, optimizer="sgd").fit()
    big, accum = final_weights(tmp_path / "big"), final_weights(tmp_path / "accum")
    assert big.keys() == accum.keys()
    for key in big:
        torch.testing.assert_close(big[key], accum[key], rtol=1e-5, atol=1e-6)


def test_loss_decreases_and_outputs_are_written(tmp_path):
    make_trainer(tmp_path, max_steps=40, checkpoint_every=10, keep_last=2).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 41))
    assert records[-1]["loss"] < 0.3 * records[0]["loss"]
    assert (tmp_path / "loss_curve.png").stat().st_size > 5000
    assert [step for step, _ in checkpoint_step_dirs(tmp_path)] == [30, 40], "keep_last=2 prunes older ones"


def test_only_optimized_module_receives_gradients(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    critic_before = {k: v.clone() for k, v in trainer.modules["critic"].state_dict().items()}
    captured = {}

    def step(ctx, batch):
        x, y = batch
        out = ctx.module("net")(x)
        loss = (out - y).pow(2).mean() + ctx.raw("critic")(out).mean()
        ctx.optimize("net", loss)
        captured["critic_grads"] = [p.grad for p in ctx.raw("critic").parameters()]
        return {"loss": loss}

    trainer.step_fn = step
    trainer.fit()
    assert all(g is None for g in captured["critic_grads"])
    for key, value in trainer.modules["critic"].state_dict().items():
        assert torch.equal(value, critic_before[key])


def test_existing_run_is_not_overwritten(tmp_path):
    make_trainer(tmp_path, max_steps=4).fit()
    with pytest.raises(CheckpointError, match="--resume"):
        make_trainer(tmp_path, max_steps=4).fit()


def test_resume_with_other_config_is_refused(tmp_path):
    make_trainer(tmp_path, max_steps=4).fit()
    with pytest.raises(CheckpointError, match="different model config"):
        make_trainer(tmp_path, max_steps=8, dropout=0.3).fit(resume=True)


@pytest.mark.slow
def test_torchrun_two_ranks_identical_weights_and_rank0_writes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(SCRIPT), str(run_dir), "--steps", "6", "--dropout", "0", "--batch", "4",
        ],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    digests = dict(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("WEIGHTS"))
    assert set(digests) == {"0", "1"}
    assert digests["0"] == digests["1"], "ranks diverged"

    # rank 0 alone wrote: one metrics line per step, the expected files and nothing else
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "loss_curve.png", "metrics.jsonl"]
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))

    # sharding is right: 2 ranks x batch 4 follow the same trajectory as 1 process x batch 8
    single = tmp_path / "single"
    run_script(single, "--steps", "6", "--dropout", "0", "--batch", "8")
    ddp_w, single_w = final_weights(run_dir), final_weights(single)
    for key in single_w:
        torch.testing.assert_close(ddp_w[key], single_w[key], rtol=1e-4, atol=1e-5)


def test_batch_size_is_the_global_batch_shared_by_the_processes(monkeypatch) -> None:
    from orchestrion.errors import ConfigError
    from orchestrion.training import per_process_batch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert per_process_batch(8) == 8
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert per_process_batch(8) == 2
    for bad in (6, 2):
        with pytest.raises(ConfigError, match=f"global batch size {bad} is not a multiple of the 4 training processes"):
            per_process_batch(bad)
