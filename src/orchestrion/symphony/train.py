"""SymphonyNet training recipe (spec §4.4, §5) on the shared trainer.

* Loss: per field, the NLL summed over the batch's targets that are not PAD (metadata steps
  therefore only train the event head), then the mean of the four sums divided by the number of
  target rows (fairseq's per-step normaliser). Logged per field: bits per non-PAD target of that field.
* Optimiser: AdamW (β 0.9/0.98, ε 1e-6, decoupled weight decay 0.01, on every parameter as in
  fairseq), learning rate raised linearly from 0 to the peak over ``warmup_steps`` and lowered
  linearly to 0 at ``total_steps``. The rate is a pure function of the step, set before every
  update, so a resumed run follows the same schedule without any scheduler state.
* Batches: ``batch_size`` in the config is the GLOBAL number of windows per update. Each process
  takes ``micro_batch`` windows per forward pass and accumulates ``batch_size / (micro_batch ·
  world size)`` of them, so 1 or K processes (torchrun) train the same recipe. Each micro-batch
  is normalised by its own rows and accumulation/DDP average those means, which equals the
  per-row mean over the whole update when windows are full (the usual case at 4096 steps).
* At every checkpoint the main process evaluates the validation pieces (bits per field over every
  row, each scored once; instrument accuracy = argmax of the instrument logits averaged over each
  track's notes vs its true program), appends the numbers to ``metrics.jsonl`` (keys ``valid_*``)
  and writes a short sampled preview to ``samples/step_NNNNNNNN.mid`` + ``.png``.

Run directory: ``checkpoints/`` (weights + :class:`SymphonyTrainingConfig`), ``split.json`` (the
seeded train/valid/test split with piece sources), ``music_bpe.json`` (copy of the dataset's merges,
so that :func:`orchestrion.symphony.models.load_symphony` needs the run directory alone),
``metrics.jsonl``, ``loss_curve.png``, ``samples/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint
from orchestrion.errors import CheckpointError, ConfigError, DataError
from orchestrion.fileio import atomic_write_text, read_json
from orchestrion.symbolic.dataset import TokenDataset
from orchestrion.symphony.config import FIELDS, SymphonyTrainingConfig
from orchestrion.symphony.data import (
    EvalWindow,
    WindowDataset,
    collate_windows,
    dataset_tempo_tokens,
    eval_windows,
    position_table_sizes,
    split_pieces,
)
from orchestrion.symphony.metrics import evaluate, field_nll
from orchestrion.symphony.model import SymphonyModel
from orchestrion.symphony.models import BPE_FILE, MODEL_MODULE, SPLIT_FILE
from orchestrion.training import Trainer, TrainerConfig, per_process_batch, world_size
from orchestrion.training.trainer import METRICS_FILE

SAMPLES_SUBDIR = "samples"
PREVIEW_STEPS = 256  # rows of the sampled preview written at each checkpoint


# ----------------------------------------------------------------------------------------- loss


def sequence_loss(logits: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """§4.4 loss: mean over the four fields of the summed NLL, per target row; plus bits per field."""
    parts = field_nll(logits, target)
    rows = parts["event"][1].clamp(min=1)
    loss = sum(nll for nll, _ in parts.values()) / (len(FIELDS) * rows)
    bits = {f"{field}_bits": float(nll.detach() / count.clamp(min=1) / math.log(2)) for field, (nll, count)
            in parts.items()}
    return loss, bits


def learning_rate(config: SymphonyTrainingConfig, step: int) -> float:
    """Learning rate of update ``step`` (0-based): linear warm-up to the peak, linear decay to 0."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    remaining = (config.total_steps - step) / max(config.total_steps - config.warmup_steps, 1)
    return config.learning_rate * max(remaining, 0.0)


def build_optimizer(config: SymphonyTrainingConfig, model: SymphonyModel) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        model.parameters(), lr=learning_rate(config, 0), betas=(config.beta1, config.beta2), eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )


def make_step_fn(config: SymphonyTrainingConfig) -> Callable:
    def step(ctx, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        lr = learning_rate(config, ctx.step)
        ctx.set_learning_rate(lr)
        with ctx.autocast():
            logits = ctx.module(MODEL_MODULE)(batch["source"])
        loss, bits = sequence_loss(logits, batch["target"])
        ctx.optimize(MODEL_MODULE, loss)
        return {"loss": loss.detach(), **bits, "lr": lr}

    return step


# -------------------------------------------------------------------------------------- preview


@torch.no_grad()
def write_preview(model: SymphonyModel, bpe, out_stem: Path, *, seed: int, max_steps: int = PREVIEW_STEPS) -> Path:
    """Sample a preview with the grammar-aware generator, write ``<stem>.mid`` (+ ``.png`` if it has notes)."""
    from orchestrion.symbolic.midi import save_midi
    from orchestrion.symbolic.pianoroll import plot_pianoroll
    from orchestrion.symphony.generate import SamplingOptions, generate

    piece = generate(model, bpe, SamplingOptions(max_steps=max_steps, seed=seed))
    score = piece.score()
    midi = save_midi(score, out_stem.with_suffix(".mid"))
    if score.note_num() > 0:
        plot_pianoroll(score, out_stem.with_suffix(".png"), title=f"{out_stem.name}: {len(piece.tokens)} steps")
    return midi


# ----------------------------------------------------------------------------------------- runs


class _SymphonyTrainer(Trainer):
    """The shared trainer plus validation and a sampled preview at every checkpoint (main process)."""

    def __init__(self, *args, valid: list[EvalWindow], eval_batch: int, bpe, preview_seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.valid, self.eval_batch, self.bpe, self.preview_seed = valid, eval_batch, bpe, preview_seed

    def save(self) -> Path | None:
        if self.is_main:
            model = self.modules[MODEL_MODULE]
            record: dict[str, Any] = {"step": self.step}
            if self.valid:
                metrics = evaluate(model, self.valid, batch_size=self.eval_batch, device=self.device)
                record.update({f"valid_{k}": v for k, v in metrics.items() if k != "tracks"})
                with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            was_training = model.training
            model.eval()
            write_preview(model, self.bpe, self.run_dir / SAMPLES_SUBDIR / f"step_{self.step:08d}",
                          seed=self.preview_seed + self.step)
            model.train(was_training)
        return super().save()


def _new_config(
    dataset: TokenDataset, preset: str, overrides: dict[str, Any], model_overrides: dict[str, Any]
) -> tuple[SymphonyTrainingConfig, Any]:
    """The config of a new run: the preset with overrides, vocabulary and position tables from the data."""
    base = SymphonyTrainingConfig.preset_config(preset)
    if "total_steps" in overrides and "warmup_steps" not in overrides:
        # a shorter or longer run keeps the preset's warm-up fraction
        overrides["warmup_steps"] = max(1, round(overrides["total_steps"] * base.warmup_steps / base.total_steps))
    config = dataclasses.replace(base, **overrides)
    if model_overrides:
        config = config.replace_model(**model_overrides)
    split = split_pieces(len(dataset), config.split_seed, config.valid_fraction)
    max_rel, max_mea = position_table_sizes([dataset.piece(i) for i in split.train], config.model.window)
    config = config.replace_model(
        event_vocab_size=dataset.event_vocab_size,
        tempo_tokens=dataset_tempo_tokens(dataset),
        max_rel_pos=max_rel,
        max_mea_pos=max_mea,
    )
    return config, split


def _split_record(dataset: TokenDataset, config: SymphonyTrainingConfig, split) -> dict:
    return {
        "data_dir": str(dataset.data_dir.resolve()),
        "pieces": len(dataset),
        "seed": config.split_seed,
        "valid_fraction": config.valid_fraction,
        **split.to_json(),
        "sources": {str(i): dataset.meta(i).get("source") for part in (split.valid, split.test) for i in part},
    }


def _check_resumable(run_dir: Path, dataset: TokenDataset, config: SymphonyTrainingConfig) -> Any:
    split = split_pieces(len(dataset), config.split_seed, config.valid_fraction)
    recorded = read_json(run_dir / SPLIT_FILE, "run split record", CheckpointError)
    if {k: recorded.get(k) for k in ("pieces", "train", "valid", "test")} != {
        "pieces": len(dataset), **split.to_json()
    }:
        raise DataError(f"{dataset.data_dir}: is not the dataset {run_dir} was trained on "
                        f"({recorded.get('data_dir')}, {recorded.get('pieces')} pieces)")
    if (dataset.event_vocab_size, dataset_tempo_tokens(dataset)) != (config.model.event_vocab_size,
                                                                     config.model.tempo_tokens):
        raise DataError(f"{dataset.data_dir}: vocabulary or tempo tokens differ from the run's model")
    return split


def train_symphony(
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    preset: str = "full",
    resume: bool = False,
    steps: int | None = None,
    batch_size: int | None = None,
    micro_batch: int | None = None,
    learning_rate: float | None = None,
    warmup_steps: int | None = None,
    window: int | None = None,
    dropout: float | None = None,
    valid_fraction: float | None = None,
    split_seed: int | None = None,
    workers: int = 0,
    checkpoint_every: int = 1000,
    log_every: int = 10,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, float]:
    """Train a SymphonyNet model on a token dataset folder; returns the last step's metrics.

    ``preset``: ``full``/``small``/``debug`` (model size and recipe, see
    :mod:`orchestrion.symphony.config`); ``steps`` (total updates; warm-up keeps its preset
    fraction unless ``warmup_steps`` is given), ``batch_size`` (GLOBAL windows per update),
    ``learning_rate`` (peak), ``window``, ``dropout``, ``valid_fraction`` and ``split_seed`` override it for a new run.
    ``micro_batch``: windows per forward pass and process (default: the whole share of the
    process; lower it to fit memory, the recipe does not change). With ``resume`` the run in
    ``run_dir`` continues with its stored config; overrides that would change it are refused, except
    ``steps``, which moves the end of the learning-rate schedule (to train a finished run further).
    """
    from orchestrion.symbolic.music_bpe import MusicBPE

    run_dir = Path(run_dir)
    dataset = TokenDataset(data_dir)
    overrides = {k: v for k, v in (("total_steps", steps), ("batch_size", batch_size),
                                   ("learning_rate", learning_rate), ("warmup_steps", warmup_steps),
                                   ("valid_fraction", valid_fraction), ("split_seed", split_seed)) if v is not None}
    model_overrides = {k: v for k, v in (("window", window), ("dropout", dropout)) if v is not None}
    existing = checkpoint_step_dirs(run_dir)
    if existing and not resume:
        raise CheckpointError(f"{run_dir} already holds checkpoints (latest step {existing[-1][0]}); "
                              "pass --resume to continue it or choose a new output directory")
    if existing:
        ckpt = load_checkpoint(run_dir)
        if not isinstance(ckpt.config, SymphonyTrainingConfig):
            raise CheckpointError(f"{run_dir}: holds a {ckpt.kind!r} run, not a SymphonyNet run")
        config = ckpt.config
        total_steps = overrides.pop("total_steps", config.total_steps)
        changed = {k: v for k, v in {**overrides, **model_overrides}.items()
                   if v != getattr(config.model if k in model_overrides else config, k)}
        if changed:
            raise ConfigError(f"{run_dir}: the run was started with other settings; --resume keeps them "
                              f"(remove {', '.join(sorted(changed))} or train into a new --out)")
        if total_steps != config.total_steps:
            # --steps on resume moves the end of the schedule: the rate stays a pure function of the step
            warnings.warn(f"{run_dir}: the learning rate now decays to 0 at step {total_steps} instead of "
                          f"{config.total_steps}", stacklevel=2)
            config = dataclasses.replace(config, total_steps=total_steps)
        split = _check_resumable(run_dir, dataset, config)
    else:
        config, split = _new_config(dataset, preset, overrides, model_overrides)
        atomic_write_text(run_dir / SPLIT_FILE, json.dumps(_split_record(dataset, config, split), indent=1) + "\n")
        if dataset.bpe is not None:
            dataset.bpe.save(run_dir / BPE_FILE)

    share = per_process_batch(config.batch_size)
    micro = micro_batch or share
    if micro < 1 or share % micro:
        raise ConfigError(f"--micro-batch {micro} must divide the per-process batch {share} "
                          f"(global {config.batch_size} over {world_size()} processes)")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # fresh weights are a function of the seed alone
        model = SymphonyModel(config.model)
    optimizer = build_optimizer(config, model)
    train_data = WindowDataset(dataset, split.train, window=config.model.window, stride=config.window_stride,
                               relabel=config.relabel_tracks)
    valid = eval_windows(dataset, split.valid, window=config.model.window, seed=config.split_seed)
    trainer = _SymphonyTrainer(
        run_dir,
        model_config=config,
        modules={MODEL_MODULE: model},
        optimizers={MODEL_MODULE: optimizer},
        step_fn=make_step_fn(config),
        dataset=train_data,
        collate_fn=collate_windows,
        config=TrainerConfig(
            max_steps=config.total_steps, batch_size=micro, grad_accum=share // micro, num_workers=workers,
            checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, device=device, progress=progress,
        ),
        valid=valid,
        eval_batch=micro,
        bpe=MusicBPE.load(run_dir / BPE_FILE, check_mmr=False) if dataset.bpe is not None else None,
        preview_seed=seed,
    )
    if progress and trainer.is_main:
        from rich.console import Console

        Console(stderr=True).print(
            f"SymphonyNet {preset if not existing else 'run'}: {model.n_parameters() / 1e6:.2f} M parameters, "
            f"{len(split.train)} train / {len(split.valid)} valid / {len(split.test)} test pieces, "
            f"{len(train_data)} windows of ≤ {config.model.window} steps per epoch, global batch {config.batch_size}"
        )
    return trainer.fit(resume=resume)
