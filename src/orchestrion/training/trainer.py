"""The one training loop of orchestrion, shared by every model.

A recipe hands the :class:`Trainer` its modules, optimizers, a step function and a
map-style dataset; the trainer owns everything else: device placement, DDP under
``torchrun`` (gloo on CPU, NCCL on GPU), gradient accumulation, mixed precision on
GPU, periodic atomic checkpoints with keep-last-N, bit-exact resume, a progress bar,
``metrics.jsonl`` and ``loss_curve.png``.

Determinism: the dataset never sees a bare index but a :class:`SampleKey` whose seed
is a pure function of (trainer seed, position in the global sample stream). Data
order and per-sample randomness therefore depend only on the position, so a resumed run
and any DDP world size see exactly the samples they would have seen uninterrupted.
Checkpoints store the position (``samples_seen``), the trainer config, the world size
and every rank's CPU and CUDA generator: a resume with another world size, batch size
or accumulation continues at the next unseen sample (no sample skipped or repeated),
says that it is no longer bit-identical, and a resume with another seed is refused.

Feedback: the checkpoint a resume starts from, a run already past ``max_steps``, the
expected duration (from the speed of the first steps), and — when stderr is not a
terminal (a cluster job's log) — a progress line every :data:`PROGRESS_LINE_SECONDS`
instead of the bar. Ctrl-C finishes the current step, writes a checkpoint and names it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
import warnings
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
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from orchestrion.config import config_to_dict
from orchestrion.device import resolve_device
from orchestrion.errors import CheckpointError, ConfigError
from orchestrion.fileio import atomic_write_text

METRICS_FILE = "metrics.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"
PROGRESS_LINE_SECONDS = 30.0  # without a terminal: one progress line this often
ESTIMATE_AFTER_SECONDS = 10.0  # the expected duration is printed once the first steps took this long


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
    permutation seeded by (seed, e); from global sample ``start_sample`` on, rank ``r``
    takes every ``world``-th micro-batch.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int, world: int, start_sample: int):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.rank, self.world, self.start_sample = rank, world, start_sample
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _item(self, s: int) -> SampleKey:
        epoch, pos = divmod(s, self.n_items)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
        sample_seed = int(np.random.SeedSequence([self.seed, s]).generate_state(1, np.uint64)[0] >> 1)
        return SampleKey(int(self._perm[pos]), sample_seed)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        micro = 0
        while True:
            first = self.start_sample + (micro * self.world + self.rank) * self.batch_size
            yield [self._item(s) for s in range(first, first + self.batch_size)]
            micro += 1


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode audio/MIDI; the main process owns the cores
    # a worker busy with a batch never polls its parent: without this it outlives a killed trainer
    _die_with_parent()


def _format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [_to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch


def world_size() -> int:
    """Number of training processes: ``WORLD_SIZE`` under torchrun, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_process_batch(global_batch: int) -> int:
    """The share of one process when ``global_batch`` samples per step are split over :func:`world_size`.

    ``--batch-size`` means the global batch in every recipe, so a run on 1 or K processes trains the same
    recipe; a batch the processes cannot share evenly is a :class:`ConfigError`.
    """
    world = world_size()
    share, rest = divmod(global_batch, world)
    if rest or share == 0:
        raise ConfigError(f"the global batch size {global_batch} is not a multiple of the {world} training processes")
    return share


def _resume_identity(config: Any) -> dict[str, Any]:
    """The fields a resumed run must share with its checkpoint: all but those the config class lists in
    ``RESUME_MAY_CHANGE`` (e.g. the step where a schedule ends, so a finished run can train further)."""
    values = config_to_dict(config)
    for name in getattr(type(config), "RESUME_MAY_CHANGE", ()):
        values.pop(name, None)
    return values


class StepContext:
    """What a step function may use: modules, optimisation, autocast, step and rank."""

    def __init__(self, trainer: Trainer):
        self._trainer = trainer
        self.micro = 0

    @property
    def step(self) -> int:
        return self._trainer.step

    @property
    def max_steps(self) -> int:
        """The step this run ends at (``TrainerConfig.max_steps``), where a learning-rate schedule ends."""
        return self._trainer.config.max_steps

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

    def set_learning_rate(self, learning_rate: float) -> None:
        """Set every optimizer's learning rate for this update (a schedule that is a function of the step
        needs no state of its own, so a resumed run follows it exactly)."""
        for optimizer in self._trainer.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = learning_rate

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
        self.samples_seen = 0  # position in the global sample stream (all ranks, all micro-batches)
        items = len(dataset)  # type: ignore[arg-type]
        if items == 0:
            raise ConfigError("the training dataset is empty")
        if config.batch_size > items:
            warnings.warn(
                f"batch size {config.batch_size} is more than the {items} samples the data holds per epoch; "
                f"using {items}",
                stacklevel=2,
            )
            self.config = config = dataclasses.replace(config, batch_size=items)

        self._owns_process_group = False
        self.world_size = world_size()
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
        self._stop_requested = False
        self._saved_step: int | None = None
        self._live_bar = None  # the rich Progress while it is drawn

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
            start_sample=self.samples_seen,
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
    def _all_ranks(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a CPU ``tensor`` (collective under DDP; through the device for NCCL)."""
        if self.world_size == 1:
            return [tensor]
        local = tensor.to(self.device)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(gathered, local)
        return [t.cpu() for t in gathered]

    def _rng_state(self) -> dict[str, Any]:
        """Every rank's generators (CPU and its own CUDA device), so that each resumes its own stream."""
        torch_states = self._all_ranks(torch.get_rng_state())
        cuda_states = self._all_ranks(torch.cuda.get_rng_state(self.device)) if self.device.type == "cuda" else []
        np_state = np.random.get_state()
        return {
            "torch": torch_states,
            "cuda": cuda_states,
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": random.getstate(),
        }

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        torch_states, cuda_states = state["torch"], state["cuda"]
        if self.rank < len(torch_states):
            torch.set_rng_state(torch_states[self.rank])
        else:  # a rank the saved run did not have: its own fresh stream
            torch.manual_seed(self.config.seed + self.rank + 1_000_003 * self.step)
        if self.device.type == "cuda":
            if self.rank < len(cuda_states):
                torch.cuda.set_rng_state(cuda_states[self.rank], self.device)
            else:
                torch.cuda.manual_seed(self.config.seed + self.rank + 1_000_003 * self.step)
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
            "samples_seen": self.samples_seen,
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
        self._saved_step = self.step
        for _, old in checkpoint_step_dirs(self.run_dir)[: -self.config.keep_last]:
            try:
                shutil.rmtree(old)
            except OSError as error:  # training goes on; the user learns what is left behind
                warnings.warn(f"{old}: could not delete this old checkpoint ({error.strerror or error})", stacklevel=2)
        self._plot_metrics()
        return path

    def _resume(self) -> bool:
        latest = latest_checkpoint(self.run_dir)
        if latest is None:
            return False
        ckpt = load_checkpoint(latest[1])
        if _resume_identity(ckpt.config) != _resume_identity(self.model_config) or type(ckpt.config) is not type(
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
        self.step = int(state["step"])
        self.samples_seen = self._resume_position(ckpt.path, state)
        self._set_rng_state(state["rng"])
        self._saved_step = self.step
        self._say(f"resuming from {ckpt.path} (step {self.step})")
        return True

    def _resume_position(self, path: Path, state: dict[str, Any]) -> int:
        """Where in the sample stream the checkpoint stopped; refuses a changed seed, adapts to a changed
        world size, batch size or accumulation (and says the run is then no longer bit-identical)."""
        stored = state.get("trainer_config") or {}
        stored_world = int(state.get("world_size", 1))
        if "seed" in stored and stored["seed"] != self.config.seed:
            raise CheckpointError(
                f"{path}: the run was trained with seed {stored['seed']}, not {self.config.seed}; "
                "resume with the same seed (another seed would draw other data)"
            )
        batch = int(stored.get("batch_size", self.config.batch_size))
        accum = int(stored.get("grad_accum", self.config.grad_accum))
        seen = state.get("samples_seen")
        if seen is None:  # checkpoints written before the position was stored
            seen = self.step * accum * stored_world * batch
        changed = [
            f"{name} {old} -> {new}"
            for name, old, new in (
                ("world size", stored_world, self.world_size),
                ("batch size", batch, self.config.batch_size),
                ("gradient accumulation", accum, self.config.grad_accum),
            )
            if old != new
        ]
        if changed:
            warnings.warn(
                f"{path}: resuming with {', '.join(changed)}: training continues at sample {int(seen)} of the data "
                "stream (none skipped or repeated), but is no longer bit-identical to an uninterrupted run",
                stacklevel=3,
            )
        return int(seen)

    # ----------------------------------------------------------------- logging
    def _say(self, message: str) -> None:
        """One line on stderr from rank 0 (what the run does: resume point, estimates, checkpoints);
        above the progress bar while one is drawn."""
        if not self.is_main:
            return
        if self._live_bar is not None:
            self._live_bar.console.print(message, highlight=False, markup=False)
        else:
            print(message, file=sys.stderr, flush=True)

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
            self._say(
                f"{self.run_dir}: already at step {self.step}, which reaches the {self.config.max_steps} steps asked "
                "for; nothing to train (ask for more steps to continue)"
            )
            return last
        with self._ctrl_c_finishes_the_step():
            last = self._train(ctx)
        if self.world_size > 1:
            dist.barrier()
        if self._owns_process_group:
            dist.destroy_process_group()
        return last

    @contextlib.contextmanager
    def _ctrl_c_finishes_the_step(self) -> Iterator[None]:
        """A single process: the first Ctrl-C ends training after the current step with a checkpoint
        (see :meth:`_train`), a second one stops at once. Under DDP Ctrl-C keeps its default effect."""
        if self.world_size > 1 or threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum, frame) -> None:
            self._stop_requested = True
            signal.signal(signal.SIGINT, previous)
            self._say("Ctrl-C: finishing this step and writing a checkpoint (press again to stop at once)")

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _train(self, ctx: StepContext) -> dict[str, float]:
        last: dict[str, float] = {}
        on_terminal = sys.stderr.isatty()
        show = self.config.progress and self.is_main
        progress = self._progress(enabled=show and on_terminal)
        self._live_bar = progress if show and on_terminal else None
        started, first_step = time.monotonic(), self.step
        next_line, estimated = started + PROGRESS_LINE_SECONDS, False
        per_step = self.config.grad_accum * self.world_size * self.config.batch_size
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
                self.samples_seen += per_step
                last = {k: v / self.config.grad_accum for k, v in sums.items()}
                if self.is_main and (self.step % self.config.log_every == 0 or self.step == self.config.max_steps):
                    self._log(last, time.monotonic() - started)
                if self.step % self.config.checkpoint_every == 0 or self.step == self.config.max_steps:
                    self.save()
                shown = "  ".join(f"{k} {v:.4g}" for k, v in list(last.items())[:4])
                progress.update(task, completed=self.step, metrics=shown)
                now = time.monotonic()
                if show and not estimated and now - started >= ESTIMATE_AFTER_SECONDS:
                    estimated = True
                    rate = (self.step - first_step) / (now - started)
                    remaining = (self.config.max_steps - self.step) / rate
                    self._say(
                        f"{rate:.3g} steps/s: the remaining {self.config.max_steps - self.step} steps will take "
                        f"about {_format_duration(remaining)}"
                    )
                if show and not on_terminal and now >= next_line:
                    next_line = now + PROGRESS_LINE_SECONDS
                    self._say(f"step {self.step}/{self.config.max_steps}  {shown}  ({_format_duration(now - started)})")
                if self._stop_requested:
                    if self._saved_step != self.step:
                        self.save()
                    self._say(
                        f"interrupted at step {self.step}: checkpoint written to "
                        f"{self.run_dir / CHECKPOINTS_SUBDIR / f'step_{self.step:08d}'}; continue with --resume"
                    )
                    raise KeyboardInterrupt
        self._live_bar = None
        done = self.step - first_step
        rate = done / max(time.monotonic() - started, 1e-9)
        self._say(f"trained {done} steps ({rate:.2f} steps/s) → {self.run_dir}")
        return last

    def _progress(self, enabled: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            disable=not enabled,
            transient=False,
        )
