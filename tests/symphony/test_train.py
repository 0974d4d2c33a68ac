"""SymphonyNet training: loss, schedule, overfitting real pieces, bit-exact resume, loading, bad inputs."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint, save_checkpoint
from orchestrion.cli import app
from orchestrion.errors import CheckpointError, ConfigError, DataError
from orchestrion.musika.config import Level1Config
from orchestrion.symbolic.dataset import TokenDataset
from orchestrion.symbolic.midi import load_midi
from orchestrion.symbolic.mmr_vocab import PAD
from orchestrion.symphony.config import SymphonyConfig, SymphonyTrainingConfig
from orchestrion.symphony.data import collate_windows, eval_windows
from orchestrion.symphony.metrics import evaluate, evaluate_run
from orchestrion.symphony.model import SymphonyModel
from orchestrion.symphony.models import load_symphony
from orchestrion.symphony.train import learning_rate, sequence_loss, train_symphony

runner = CliRunner()


def train_cli(*args: str):
    return runner.invoke(app, ["symphony", "train", *map(str, args)])


def weights_digest(run_dir: Path) -> str:
    weights = load_file(str(checkpoint_step_dirs(run_dir)[-1][1] / "model.safetensors"))
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode() + weights[key].numpy().tobytes())
    return digest.hexdigest()


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pad_targets_do_not_change_the_loss(demo_tokens):
    torch.manual_seed(0)
    model = SymphonyModel(SymphonyConfig.preset("debug", event_vocab_size=TokenDataset(demo_tokens).event_vocab_size))
    model.eval()
    window = eval_windows(TokenDataset(demo_tokens), (0,), window=60, seed=0)[0].rows
    alone = collate_windows([window])
    # the same window in a longer batch: 15 more positions with PAD targets and arbitrary inputs
    longer = {k: torch.cat([v, torch.full((1, 15, v.shape[-1]), 7)], dim=1) for k, v in alone.items()}
    longer["target"][:, -15:] = PAD
    with torch.no_grad():
        loss_alone, bits_alone = sequence_loss(model(alone["source"]), alone["target"])
        loss_longer, bits_longer = sequence_loss(model(longer["source"]), longer["target"])
    torch.testing.assert_close(loss_longer, loss_alone, rtol=1e-6, atol=1e-6)
    assert bits_longer == pytest.approx(bits_alone, rel=1e-6)


def test_learning_rate_warms_up_then_decays_to_zero():
    config = SymphonyTrainingConfig.preset_config("debug", learning_rate=1e-3, warmup_steps=10, total_steps=110)
    rates = [learning_rate(config, s) for s in range(110)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in itertools.pairwise(rates[:10]))
    assert all(a > b for a, b in itertools.pairwise(rates[10:]))
    assert learning_rate(config, 60) == pytest.approx(5e-4) and learning_rate(config, 110) == 0.0


def test_tiny_model_overfits_real_pieces_and_names_their_instruments(demo_tokens, tmp_path):
    # ~50 s: 500 updates are what a 2-layer model needs to memorise six pieces' instruments
    torch.set_num_threads(1)
    run = tmp_path / "run"
    result = train_cli(demo_tokens, "--out", run, "--preset", "debug", "--steps", 500, "--batch-size", 8,
                       "--lr", 5e-3, "--window", 128, "--valid-fraction", 0, "--log-every", 1,
                       "--checkpoint-every", 250, "--seed", 1)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    losses = [r["loss"] for r in records(run) if "loss" in r]
    assert len(losses) == 500
    assert sum(losses[-20:]) / 20 < losses[0] / 2.5, (losses[0], losses[-20:])

    trained = load_symphony(run)
    dataset = TokenDataset(demo_tokens)
    assert trained.bpe is not None and trained.bpe.vocab_size == dataset.event_vocab_size
    assert trained.tempo_tokens and trained.config.window == 128 and not trained.model.training
    metrics = evaluate(trained.model, eval_windows(dataset, tuple(range(6)), window=128, seed=0), batch_size=8,
                       device=torch.device("cpu"))
    assert metrics["tracks"] == 21  # five pieces of four parts for five ensembles, one piano reduction
    assert metrics["instrument_accuracy"] >= 0.95
    for step in (250, 500):
        sample = run / "samples" / f"step_{step:08d}.mid"
        assert load_midi(sample).note_num() > 0 and sample.with_suffix(".png").stat().st_size > 1000
    split = json.loads((run / "split.json").read_text())
    assert split["train"] == [0, 1, 2, 3, 4, 5] and split["valid"] == [] and split["pieces"] == 6


def test_resume_is_bit_exact_and_validation_is_logged(demo_tokens, tmp_path):
    torch.set_num_threads(1)
    args = dict(preset="debug", steps=6, batch_size=4, micro_batch=2, window=64, valid_fraction=0.3,
                checkpoint_every=3, log_every=1, seed=2, progress=False)
    run = tmp_path / "run"
    train_symphony(demo_tokens, run, **args)
    reference = weights_digest(run)
    logged = records(run)
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3, 4, 5, 6]
    valid = [r for r in logged if "valid_event_bits" in r]
    assert [r["step"] for r in valid] == [3, 6]
    assert all(0 < r["valid_event_bits"] < 12 and 0 <= r["valid_instrument_accuracy"] <= 1 for r in valid)
    assert (run / "loss_curve.png").stat().st_size > 5000

    shutil.rmtree(checkpoint_step_dirs(run)[-1][1])  # as if killed between step 3 and step 6
    train_symphony(demo_tokens, run, resume=True, **{k: v for k, v in args.items() if k != "preset"})
    assert weights_digest(run) == reference
    assert [r["step"] for r in records(run) if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records(run) if "valid_event_bits" in r] == [3, 6]

    with pytest.raises(ConfigError, match="learning_rate"):
        train_symphony(demo_tokens, run, resume=True, learning_rate=1.0, progress=False)
    extended = tmp_path / "extended"  # a finished run trains further when --steps asks for more
    shutil.copytree(run, extended)
    with pytest.warns(UserWarning, match="decays to 0 at step 8 instead of 6"):
        kept = {k: v for k, v in args.items() if k not in ("preset", "steps")}
        train_symphony(demo_tokens, extended, resume=True, steps=8, **kept)
    assert [r["step"] for r in records(extended) if "loss" in r] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert load_checkpoint(extended).config.total_steps == 8

    # the held-out pieces the split recorded, through the evaluation command
    test = evaluate_run(run, split="test")
    split = json.loads((run / "split.json").read_text())
    assert test["pieces"] == len(split["test"]) == 1 and test["tracks"] >= 1
    assert evaluate_run(run, demo_tokens, split="valid")["pieces"] == len(split["valid"]) == 2
    out = tmp_path / "test.json"
    result = runner.invoke(app, ["evaluate", "symphony", str(run), "--json", str(out)])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert json.loads(out.read_text())["event_bits"] == pytest.approx(test["event_bits"])
    with pytest.raises(DataError, match="unknown split"):
        evaluate_run(run, split="dev")
    with pytest.raises(CheckpointError, match="--resume"):
        train_symphony(demo_tokens, run, preset="debug", steps=6, progress=False)


def test_global_batch_must_split_into_micro_batches(demo_tokens, tmp_path):
    with pytest.raises(ConfigError, match="must divide"):
        train_symphony(demo_tokens, tmp_path / "run", preset="debug", steps=2, batch_size=4, micro_batch=3,
                       progress=False)


def test_bad_inputs_give_one_clear_error(demo_tokens, tmp_path):
    result = train_cli(tmp_path / "missing", "--out", tmp_path / "run", "--preset", "debug")
    assert isinstance(result.exception, DataError) and "dataset folder not found" in str(result.exception)

    (tmp_path / "midis").mkdir()
    result = train_cli(tmp_path / "midis", "--out", tmp_path / "run", "--preset", "debug")
    assert isinstance(result.exception, DataError) and "not a token dataset" in str(result.exception)

    other = tmp_path / "musika_run"
    save_checkpoint(other / "checkpoints" / "step_00000001", config=Level1Config.preset("debug"),
                    modules={"net": nn.Linear(2, 2)})
    result = train_cli(demo_tokens, "--out", other, "--preset", "debug", "--resume")
    assert isinstance(result.exception, CheckpointError) and "not a SymphonyNet run" in str(result.exception)
    with pytest.raises(CheckpointError, match="not a SymphonyNet model"):
        load_symphony(other)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_symphony(tmp_path / "nothing")
    result = train_cli(demo_tokens, "--out", tmp_path / "run", "--preset", "huge")
    assert isinstance(result.exception, ConfigError) and "unknown SymphonyNet preset" in str(result.exception)


@pytest.mark.slow
def test_torchrun_two_processes_train_the_same_recipe_as_one(demo_tokens, tmp_path):
    # --batch-size is global: 2 processes × 2 windows follow 1 process accumulating 2 × 2 windows
    # (without dropout, whose random masks differ per process)
    common = ["symphony", "train", str(demo_tokens), "--preset", "debug", "--steps", "4", "--batch-size", "4",
              "--window", "64", "--dropout", "0", "--valid-fraction", "0", "--checkpoint-every", "4", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "orchestrion.cli",
         *common, "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    train_symphony(demo_tokens, tmp_path / "single", preset="debug", steps=4, batch_size=4, micro_batch=2, window=64,
                   dropout=0.0, valid_fraction=0.0, checkpoint_every=4, seed=5, progress=False)
    a = load_file(str(checkpoint_step_dirs(tmp_path / "ddp")[-1][1] / "model.safetensors"))
    b = load_file(str(checkpoint_step_dirs(tmp_path / "single")[-1][1] / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
