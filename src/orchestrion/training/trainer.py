"""The one training loop of orchestrion, shared by every model.

A recipe hands the :class:`Trainer` its modules, optimizers, a step function and a
map-style dataset; the trainer owns everything else: device placement, DDP under
``torchrun`` (gloo on CPU, NCCL on GPU), gradient accumulation, mixed precision on
GPU, periodic atomic checkpoints with keep-last-N, bit-exact resume, a progress bar,
``metrics.jsonl`` and ``loss_curve.png``.

Determinism: the dataset never sees a bare index but a :class:`SampleKey` whose seed
is a pure function of (trainer seed, position in the global sample stream). Data
order and per-sample randomness therefore depend only on the step, so a resumed run
and any DDP world size see exactly the samples they would have seen uninterrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from orchestrion.checkpoint import (
    CHECKPOINTS_SUBDIR,
    checkpoint_step_dirs,
    load_checkpoint,
    save_checkpoint,
)
from orchestrion.config import config_to_dict
from orchestrion.device import resolve_device
from orchestrion.errors import CheckpointError, ConfigError
from orchestrion.fileio import atomic_write_text

METRICS_FILE = "metrics.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"


class SampleKey(NamedTuple):
    """What a training dataset's ``__getitem__`` receives: which item, and its own seed."""

    index: int
    seed: int


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    max_steps: int = 1000  # optimizer updates in total (a resumed run stops at the same step)
    batch_size: int = 8  # samples per micro-batch and per process
    num_workers: int = 0  # DataLoader worker processes per training process
    grad_accum: int = 1  # micro-batches per optimizer update
    checkpoint_every: int = 500  # steps between checkpoints (one is always written at the end)
    keep_last: int = 3  # older checkpoints are deleted
    log_every: int = 10  # steps between metrics.jsonl lines
    seed: int = 0
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    mixed_precision: bool = True  # bf16/fp16 autocast on CUDA; ignored on CPU
    grad_clip: float | None = None  # max global grad norm per optimizer, None = off
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "checkpoint_every", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ConfigError(f"TrainerConfig.num_workers must be >= 0, got {self.num_workers}")


class _KeyBatches:
    """Infinite stream of micro-batches of :class:`SampleKey` for one rank.

    Global sample ``s`` is item ``perm_e[s mod N]`` of epoch ``e = s // N``, with a
    permutation seeded by (seed, e); rank ``r`` takes every ``world``-th micro-batch.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int, world: int, start_micro: int):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.rank, self.world, self.start_micro = rank, world, start_micro
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _item(self, s: int) -> SampleKey:
        epoch, pos = divmod(s, self.n_items)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
        sample_seed = int(np.random.SeedSequence([self.seed, s]).generate_state(1, np.uint64)[0] >> 1)
        return SampleKey(int(self._perm[pos]), sample_seed)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        micro = self.start_micro
        while True:
            first = (micro * self.world + self.rank) * self.batch_size
            yield [self._item(s) for s in range(first, first + self.batch_size)]
            micro += 1


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode audio/MIDI; the main process owns the cores


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [_to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


class StepContext:
    """What a step function may use: modules, optimisation, autocast, step and rank."""

    def __init__(self, trainer: Trainer):
        self._trainer = trainer
        self.micro = 0

    @property
    def step(self) -> int:
        return self._trainer.step

    @property
    def device(self) -> torch.device:
        return self._trainer.device

    @property
    def rank(self) -> int:
        return self._trainer.rank

    @property
    def world_size(self) -> int:
        return self._trainer.world_size

    def module(self, name: str) -> torch.nn.Module:
        """The module to call when its own loss is optimised (DDP-wrapped when distributed)."""
        return self._trainer.wrapped[name]

    def raw(self, name: str) -> torch.nn.Module:
        """The plain module, for use as a fixed function (frozen, or inside another's loss)."""
        return self._trainer.modules[name]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision region on CUDA; a no-op on CPU."""
        return self._trainer.autocast()

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` into optimizer ``name``'s parameters only, then step it
        on the last micro-batch of the update."""
        self._trainer.optimize(name, loss, self.micro)


StepFn = Callable[[StepContext, Any], dict[str, Any]]


class Trainer:
    """Train ``modules`` with ``optimizers`` by calling ``step_fn`` on batches of ``dataset``."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        model_config: Any,
        modules: dict[str, torch.nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        step_fn: StepFn,
        dataset: Dataset,
        config: TrainerConfig,
        collate_fn: Callable | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.model_config = model_config
        self.modules = modules
        self.optimizers = optimizers
        self.step_fn = step_fn
        self.dataset = dataset
        self.config = config
        self.collate_fn = collate_fn
        self.step = 0
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError("the training dataset is empty")

        self._owns_process_group = False
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(config.device, local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            self._owns_process_group = True

        for module in modules.values():
            module.to(self.device)
        self._params = {name: [p for g in opt.param_groups for p in g["params"]] for name, opt in optimizers.items()}
        self.wrapped: dict[str, torch.nn.Module] = {}
        for name, module in modules.items():
            trainable = any(p.requires_grad for p in module.parameters())
            if self.world_size > 1 and trainable:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.wrapped[name] = DistributedDataParallel(module, device_ids=ids)
            else:
                self.wrapped[name] = module

        self._amp_dtype: torch.dtype | None = None
        if config.mixed_precision and self.device.type == "cuda":
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self._scaler = torch.amp.GradScaler("cuda") if self._amp_dtype == torch.float16 else None
        self._stepped: set[str] = set()

    # ----------------------------------------------------------------- helpers
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

    def optimize(self, name: str, loss: torch.Tensor, micro: int) -> None:
        if name not in self.optimizers:
            raise KeyError(f"no optimizer named {name!r}; have {list(self.optimizers)}")
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(f"step {self.step}: loss for {name!r} is {loss.item()} (diverged)")
        scaled = loss / self.config.grad_accum
        if self._scaler is not None:
            scaled = self._scaler.scale(scaled)
        params = [p for p in self._params[name] if p.requires_grad]
        torch.autograd.backward(scaled, inputs=params)
        if micro < self.config.grad_accum - 1:
            return
        optimizer = self.optimizers[name]
        if self._scaler is not None:
            self._scaler.unscale_(optimizer)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if self._scaler is not None:
            self._scaler.step(optimizer)
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self._stepped.add(name)

    def _set_grad_sync(self, enabled: bool) -> None:
        # DDP's own no_sync() flag: skip the all-reduce on all but the last micro-batch.
        for module in self.wrapped.values():
            if isinstance(module, DistributedDataParallel):
                module.require_backward_grad_sync = enabled

    def _loader(self) -> DataLoader:
        batches = _KeyBatches(
            len(self.dataset),  # type: ignore[arg-type]
            self.config.batch_size,
            self.config.seed,
            self.rank,
            self.world_size,
            start_micro=self.step * self.config.grad_accum,
        )
        return DataLoader(
            self.dataset,
            batch_sampler=batches,
            num_workers=self.config.num_workers,
            collate_fn=self.collate_fn,
            worker_init_fn=_worker_init if self.config.num_workers else None,
            # the loader's own generator keeps the global RNG (model noise, dropout) untouched
            generator=torch.Generator().manual_seed(self.config.seed),
            pin_memory=self.device.type == "cuda",
        )

    # ------------------------------------------------------------- checkpoints
    def _rng_state(self) -> dict[str, Any]:
        torch_state = torch.get_rng_state()
        if self.world_size > 1:  # every rank's generator, so that each resumes its own stream
            gathered = [torch.empty_like(torch_state) for _ in range(self.world_size)]
            dist.all_gather(gathered, torch_state)
            torch_states = gathered
        else:
            torch_states = [torch_state]
        np_state = np.random.get_state()
        return {
            "torch": torch_states,
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": random.getstate(),
        }

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        torch_states = state["torch"]
        torch.set_rng_state(torch_states[self.rank] if len(torch_states) == self.world_size else torch_states[0])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))

    def save(self) -> Path | None:
        """Write ``checkpoints/step_<step>`` (rank 0 only) and prune old ones."""
        rng = self._rng_state()  # collective under DDP: every rank takes part
        if not self.is_main:
            return None
        state = {
            "step": self.step,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self._scaler.state_dict() if self._scaler is not None else None,
            "rng": rng,
            "trainer_config": config_to_dict(self.config),
            "world_size": self.world_size,
        }
        path = save_checkpoint(
            self.run_dir / CHECKPOINTS_SUBDIR / f"step_{self.step:08d}",
            config=self.model_config,
            modules=self.modules,
            state=state,
        )
        for _, old in checkpoint_step_dirs(self.run_dir)[: -self.config.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        self._plot_metrics()
        return path

    def _resume(self) -> bool:
        steps = checkpoint_step_dirs(self.run_dir)
        if not steps:
            return False
        ckpt = load_checkpoint(steps[-1][1])
        if config_to_dict(ckpt.config) != config_to_dict(self.model_config) or type(ckpt.config) is not type(
            self.model_config
        ):
            raise CheckpointError(
                f"{ckpt.path}: the run directory holds a checkpoint of a different model config; "
                "resume with the same settings or train into a new --out directory"
            )
        for name, module in self.modules.items():
            ckpt.load_into(name, module)
        state = ckpt.training_state()
        if sorted(state["optimizers"]) != sorted(self.optimizers):
            raise CheckpointError(f"{ckpt.path}: optimizers {sorted(state['optimizers'])} differ from this run's")
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        if self._scaler is not None and state["scaler"] is not None:
            self._scaler.load_state_dict(state["scaler"])
        self._set_rng_state(state["rng"])
        self.step = int(state["step"])
        return True

    # ----------------------------------------------------------------- logging
    def _metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    def _truncate_metrics(self) -> None:
        """After a resume, drop lines logged past the checkpoint (they will be redone)."""
        path = self._metrics_path()
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= self.step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill mid-write
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))

    def _log(self, metrics: dict[str, float], elapsed: float) -> None:
        record = {"step": self.step, "time": round(elapsed, 3), **metrics}
        with open(self._metrics_path(), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _plot_metrics(self) -> None:
        from orchestrion.training.plots import plot_loss_curves

        path = self._metrics_path()
        if path.exists():
            plot_loss_curves(path, self.run_dir / LOSS_CURVE_FILE)

    # -------------------------------------------------------------------- loop
    def fit(self, resume: bool = False) -> dict[str, float]:
        """Train until ``config.max_steps``; returns the last step's metrics.

        With ``resume`` the latest checkpoint in the run directory is restored first
        (weights, optimizers, RNG, step); without it an existing checkpoint is an error,
        so that a run is never silently overwritten.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        existing = checkpoint_step_dirs(self.run_dir)
        if existing and not resume:
            raise CheckpointError(
                f"{self.run_dir} already holds checkpoints (latest step {existing[-1][0]}); "
                "pass --resume to continue it or choose a new output directory"
            )
        if not (resume and self._resume()):
            torch.manual_seed(self.config.seed + self.rank)
            np.random.seed((self.config.seed + self.rank) % 2**32)
            random.seed(self.config.seed + self.rank)
        if self.is_main:
            self._truncate_metrics()
        for module in self.modules.values():
            if any(p.requires_grad for p in module.parameters()):
                module.train()
        ctx = StepContext(self)
        last: dict[str, float] = {}
        if self.step >= self.config.max_steps:
            return last
        progress = self._progress()
        started, first_step = time.monotonic(), self.step
        batches = iter(self._loader())
        with progress:
            task = progress.add_task("train", total=self.config.max_steps, completed=self.step, metrics="")
            while self.step < self.config.max_steps:
                for optimizer in self.optimizers.values():
                    optimizer.zero_grad(set_to_none=True)
                self._stepped.clear()
                sums: dict[str, float] = {}
                for micro in range(self.config.grad_accum):
                    ctx.micro = micro
                    self._set_grad_sync(micro == self.config.grad_accum - 1)
                    out = self.step_fn(ctx, _to_device(next(batches), self.device))
                    for key, value in out.items():
                        value = value.detach() if isinstance(value, torch.Tensor) else value
                        sums[key] = sums.get(key, 0.0) + float(value)
                if self._scaler is not None and self._stepped:
                    self._scaler.update()
                self.step += 1
                last = {k: v / self.config.grad_accum for k, v in sums.items()}
                if self.is_main and (self.step % self.config.log_every == 0 or self.step == self.config.max_steps):
                    self._log(last, time.monotonic() - started)
                if self.step % self.config.checkpoint_every == 0 or self.step == self.config.max_steps:
                    self.save()
                shown = "  ".join(f"{k} {v:.4g}" for k, v in list(last.items())[:4])
                progress.update(task, completed=self.step, metrics=shown)
        if self.world_size > 1:
            dist.barrier()
        if self.is_main:
            done = self.step - first_step
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.console.print(f"trained {done} steps ({rate:.2f} steps/s) → {self.run_dir}")
        if self._owns_process_group:
            dist.destroy_process_group()
        return last

    def _progress(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            disable=not (self.config.progress and self.is_main),
            transient=False,
        )

