"""Training recipes of the Musika autoencoders (spec §5): two levels × two phases.

Each recipe builds modules, optimizers and a step function and hands them to the shared
:class:`~orchestrion.training.Trainer`, which owns the loop, checkpoints, resume, metrics,
mixed precision and DDP.

====================  ==========================================  =====================================
run                   trained (Adam 1e-4, β 0.5/0.999)           loss
====================  ==========================================  =====================================
level 1, phase 1      Enc1 + Dec1 (magnitude only)               L1 on normalised log-magnitude
level 1, phase 2      Dec1 (with phase); D; Enc1 frozen          hinge + 1·L1 + 4·multi-scale distance
                      (separate phase U-Net: only it trains)     (+ λ_phase·phase derivatives)
level 2, phase 1      Enc2 + Dec2; Enc1/Dec1 frozen               L1(Dec1(Dec2(Enc2(z))), s) + L1(Dec2(Enc2(z)), z)
level 2, phase 2      Dec2; D; Enc1/Dec1/Enc2 frozen              as level-1 phase 2, "real" = Dec1(Enc1(s))
====================  ==========================================  =====================================

The learning rate is constant (the paper) or, with ``lr_schedule="cosine"`` (the small preset's level-1
phase 1), half a cosine down to 0 at the run's last step; it is a function of the step alone, so a
resumed run follows the same curve, and a resume with a larger ``--steps`` stretches it.

How runs connect (the spec leaves this open):

- Phase 2 starts from a finished phase-1 run given by ``init`` (``--init RUN_DIR``) and
  writes a new run directory; the phase-1 run is left untouched. The level-1 decoder's
  output conv gets its 513 phase channels at that point (magnitude half kept); with
  ``phase_decoder="separate"`` a second U-Net makes the phase instead and the magnitude
  U-Net is frozen (inference-mode BatchNorm), so phase 2 cannot change the magnitude.
- Level 2 needs a finished level-1 *phase-2* model (``level1``, ``--level1 RUN_DIR``):
  its Enc1/Dec1 weights are **copied into every level-2 checkpoint** (as the frozen
  modules ``level1_encoder``/``level1_decoder``), and its :class:`Level1Config` into the
  level-2 config, so a level-2 run directory is self-contained for encoding and decoding.
- ``resume`` continues the run in ``run_dir`` from its latest checkpoint with the config
  stored there (``init``/``level1``/``preset`` are then not needed).

Phase-2 losses see the waveform without its first and last 768 samples: the iSTFT
cannot rebuild those edges (the analysis windows do not overlap fully there), so they
would only teach the discriminator a trivial difference.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from orchestrion.audio.spectral import (
    features_to_wave,
    log_magnitude_for_discriminator,
    multiscale_spectral_distance,
    phase_derivative_loss,
    relative_multiscale_distance,
    stft,
    wave_to_features,
)
from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint
from orchestrion.errors import CheckpointError, ConfigError
from orchestrion.musika.autoencoder import (
    Level1Decoder,
    Level1Encoder,
    Level2Decoder,
    Level2Encoder,
)
from orchestrion.musika.config import (
    CPU_PRESETS,
    EDGE_SAMPLES,
    AutoencoderTrainingConfig,
    default_steps,
)
from orchestrion.musika.discriminators import (
    SpectrogramDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from orchestrion.musika.layers import merge_windows, split_windows

SKIP_REPORT = "report.jsonl"  # unreadable training files, one JSON object each (written only when there are some)
# ------------------------------------------------------------------------------------------ modules


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    """No gradients into ``module`` and inference-mode BatchNorm: it is a fixed function now."""
    module.requires_grad_(False)
    return module.eval()


def build_modules(config: AutoencoderTrainingConfig) -> dict[str, torch.nn.Module]:
    """The modules of a run, fresh weights, frozen where the phase requires it.

    Names (also the checkpoint prefixes): ``level1_encoder``, ``level1_decoder``,
    ``level2_encoder``, ``level2_decoder`` (level 2 only), ``discriminator`` (phase 2 only).
    """
    modules: dict[str, torch.nn.Module] = {
        "level1_encoder": Level1Encoder(config.level1),
        "level1_decoder": Level1Decoder(config.level1),
    }
    if config.level == 2:
        modules["level2_encoder"] = Level2Encoder(config.level2)
        modules["level2_decoder"] = Level2Decoder(config.level2)
    if config.phase == 2:
        modules["discriminator"] = SpectrogramDiscriminator(config.discriminator)
    frozen = {
        (1, 1): (),
        (1, 2): ("level1_encoder",),
        (2, 1): ("level1_encoder", "level1_decoder"),
        (2, 2): ("level1_encoder", "level1_decoder", "level2_encoder"),
    }[(config.level, config.phase)]
    for name in frozen:
        _frozen(modules[name])
    if (config.level, config.phase) == (1, 2) and config.level1.phase_decoder == "separate":
        modules["level1_decoder"].freeze_magnitude()  # phase 2 learns the phase alone
    return modules


def build_optimizers(
    config: AutoencoderTrainingConfig, modules: dict[str, torch.nn.Module]
) -> dict[str, torch.optim.Optimizer]:
    """Phase 1: one ``autoencoder`` Adam over the trained encoder + decoder; phase 2:
    ``generator`` (the trained decoder) and ``discriminator``."""

    def adam(*names: str) -> torch.optim.Adam:
        params = [p for name in names for p in modules[name].parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=config.learning_rate, betas=(config.beta1, config.beta2))

    prefix = f"level{config.level}"
    if config.phase == 1:
        return {"autoencoder": adam(f"{prefix}_encoder", f"{prefix}_decoder")}
    return {"generator": adam(f"{prefix}_decoder"), "discriminator": adam("discriminator")}


# --------------------------------------------------------------------------------------- step functions


def _l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).abs().mean()


def _adversarial_update(
    ctx, config: AutoencoderTrainingConfig, real_wave: torch.Tensor, magnitude: torch.Tensor,
    phase: torch.Tensor, target: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """One discriminator and one decoder update (spec §5.2).

    ``real_wave`` (B, L) is what the discriminator should call real; ``magnitude``/``phase``
    (B, 513, K) are the decoder outputs for the same excerpt (K = 128 frames, two windows
    joined), ``target`` (B, 513, K) the normalised log-magnitude the L1 term compares with.
    """
    # Spectral maths in float32 outside autocast: the FFTs have no half-precision path worth the risk.
    fake_wave = features_to_wave(magnitude.float(), phase.float())[:, EDGE_SAMPLES:-EDGE_SAMPLES]
    full_real_wave, real_wave = real_wave, real_wave.float()[:, EDGE_SAMPLES:-EDGE_SAMPLES]
    real_spec = log_magnitude_for_discriminator(real_wave)
    fake_spec = log_magnitude_for_discriminator(fake_wave)

    # One discriminator call on real and fake together (a single forward per backward keeps DDP simple).
    with ctx.autocast():
        logits = ctx.module("discriminator")(torch.cat([real_spec, fake_spec.detach()]))
    real_logits, fake_logits = logits.split(real_spec.shape[0])
    d_loss = hinge_discriminator_loss(real_logits, fake_logits)
    ctx.optimize("discriminator", d_loss)

    with ctx.autocast():
        adversarial = hinge_generator_loss(ctx.raw("discriminator")(fake_spec))
    reconstruction = _l1(magnitude, target)
    if config.ms_form == "relative":
        multiscale = relative_multiscale_distance(real_wave, fake_wave)
    else:
        multiscale = multiscale_spectral_distance(real_wave, fake_wave)
    g_loss = adversarial + config.lambda_rec * reconstruction + config.lambda_ms * multiscale
    terms = {}
    if config.lambda_phase > 0:
        terms["phase"] = phase_derivative_loss(phase, stft(full_real_wave.float()))
        g_loss = g_loss + config.lambda_phase * terms["phase"]
    ctx.optimize("generator", g_loss)
    return {
        "g_loss": g_loss.detach(),
        "d_loss": d_loss.detach(),
        "adv": adversarial.detach(),
        "rec": reconstruction.detach(),
        "ms": multiscale.detach(),
        **{name: value.detach() for name, value in terms.items()},
    }


def make_step_fn(config: AutoencoderTrainingConfig):
    """The step function for ``config``'s (level, phase); batches are waveforms (B, 256·128 + 768)."""
    window1 = config.level1.window_frames
    window2 = config.level2.decoder_input_frames

    def level1_phase1(ctx, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        target = wave_to_features(wave.float())  # (B, 513, 128)
        with ctx.autocast():
            latents = ctx.module("level1_encoder")(target)  # (B, 128, 128)
            magnitude, _ = ctx.module("level1_decoder")(split_windows(latents, window1))
        loss = _l1(merge_windows(magnitude, wave.shape[0]), target)
        ctx.optimize("autoencoder", loss)
        return {"loss": loss.detach()}

    def level1_phase2(ctx, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        target = wave_to_features(wave.float())
        with torch.no_grad(), ctx.autocast():
            latents = ctx.raw("level1_encoder")(target)
        with ctx.autocast():
            magnitude, phase = ctx.module("level1_decoder")(split_windows(latents, window1))
        batch = wave.shape[0]
        return _adversarial_update(
            ctx, config, wave, merge_windows(magnitude, batch), merge_windows(phase, batch), target
        )

    def level2_phase1(ctx, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        target = wave_to_features(wave.float())
        batch = wave.shape[0]
        with torch.no_grad(), ctx.autocast():
            latents = ctx.raw("level1_encoder")(target)  # (B, 128, 128)
        with ctx.autocast():
            codes = ctx.module("level2_encoder")(latents)  # (B, 64, 16)
            rebuilt = ctx.module("level2_decoder")(split_windows(codes, window2))  # (2B, 128, 64)
            # gradients flow through the frozen Dec1 into Dec2/Enc2
            magnitude = ctx.raw("level1_decoder").decode_magnitude(rebuilt)
        latent_loss = _l1(merge_windows(rebuilt, batch), latents)
        spectral_loss = _l1(merge_windows(magnitude, batch), target)
        loss = spectral_loss + config.lambda_latent * latent_loss
        ctx.optimize("autoencoder", loss)
        return {"loss": loss.detach(), "spec": spectral_loss.detach(), "latent": latent_loss.detach()}

    def level2_phase2(ctx, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        target = wave_to_features(wave.float())
        batch = wave.shape[0]
        with torch.no_grad():
            with ctx.autocast():
                latents = ctx.raw("level1_encoder")(target)
                real_magnitude, real_phase = ctx.raw("level1_decoder")(split_windows(latents, window1))
                codes = ctx.raw("level2_encoder")(latents)
            # "real" for level 2 = what the frozen level-1 model makes of the excerpt (spec §5.3)
            real_wave = features_to_wave(
                merge_windows(real_magnitude, batch).float(), merge_windows(real_phase, batch).float()
            )
        with ctx.autocast():
            rebuilt = ctx.module("level2_decoder")(split_windows(codes, window2))
            magnitude, phase = ctx.raw("level1_decoder")(rebuilt)
        return _adversarial_update(
            ctx, config, real_wave, merge_windows(magnitude, batch), merge_windows(phase, batch), target
        )

    step_fn = {
        (1, 1): level1_phase1,
        (1, 2): level1_phase2,
        (2, 1): level2_phase1,
        (2, 2): level2_phase2,
    }[(config.level, config.phase)]
    if config.lr_schedule == "constant":
        return step_fn

    def scheduled(ctx, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        rate = learning_rate(config, ctx.step, ctx.max_steps)
        ctx.set_learning_rate(rate)
        return {**step_fn(ctx, wave), "lr": rate}

    return scheduled


def learning_rate(config: AutoencoderTrainingConfig, step: int, max_steps: int) -> float:
    """Learning rate of update ``step`` (0-based) of a run that ends at ``max_steps`` (``config.lr_schedule``)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    progress = min(step / max(max_steps, 1), 1.0)
    return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------- run set-up


def _load_run(path: str | Path, what: str):
    """A checkpoint of this recipe, or a CheckpointError naming ``what`` it was meant to be."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.config, AutoencoderTrainingConfig):
        raise CheckpointError(f"{path}: {what} must be a Musika autoencoder run, this one holds {ckpt.kind!r}")
    return ckpt


def _starting_point(
    level: int, phase: int, preset: str, init: str | Path | None, level1: str | Path | None,
    phase_decoder: str | None = None, phase_output: str | None = None,
) -> tuple[AutoencoderTrainingConfig, dict[str, torch.nn.Module]]:
    """Config and modules (with inherited weights loaded) of a new run; ``phase_decoder`` and
    ``phase_output`` (level-1 phase 2 only) replace the phase-1 run's choice of a shared or separate
    phase U-Net and of its phase form."""
    if phase == 2:
        if init is None:
            raise ConfigError(f"level-{level} phase 2 starts from a phase-1 run: pass --init RUN_DIR")
        ckpt = _load_run(init, "--init")
        previous = ckpt.config
        if previous.level != level or previous.phase != 1:
            raise CheckpointError(
                f"{init}: --init needs a level-{level} phase-1 run, got level {previous.level} phase {previous.phase}"
            )
        phase1_modules = build_modules(previous)
        for name, module in phase1_modules.items():
            ckpt.load_into(name, module)
        level1_config = previous.level1.with_phase_network(phase_decoder, phase_output)
        # the preset's phase-2 learning rate and phase term (small: phase 1 runs at a larger rate than the
        # adversarial phase, and its phase U-Net also learns from the phase-derivative term)
        phase2 = AutoencoderTrainingConfig.preset_config(previous.preset, level, 2)
        config = dataclasses.replace(
            previous, phase=2, level1=level1_config, learning_rate=phase2.learning_rate,
            lr_schedule=phase2.lr_schedule, lambda_phase=phase2.lambda_phase,
        )
        modules = build_modules(config)
        for name, module in phase1_modules.items():
            if name == "level1_decoder" and level == 1:
                # the magnitude keeps its phase-1 weights
                module.enable_phase(level1_config.phase_decoder, level1_config.phase_output)
            modules[name].load_state_dict(module.state_dict())
        return config, modules
    if level == 1:
        config = AutoencoderTrainingConfig.preset_config(preset, level=1, phase=1)
        return config, build_modules(config)
    if level1 is None:
        raise ConfigError("level 2 is trained on a finished level-1 model: pass --level1 RUN_DIR")
    ckpt = _load_run(level1, "--level1")
    if ckpt.config.level != 1 or ckpt.config.phase != 2:
        raise CheckpointError(
            f"{level1}: --level1 needs a level-1 phase-2 run, got level {ckpt.config.level} phase {ckpt.config.phase}"
        )
    base = AutoencoderTrainingConfig.preset_config(preset, level=2, phase=1)
    level2 = dataclasses.replace(base.level2, input_dim=ckpt.config.level1.latent_dim)
    config = dataclasses.replace(base, level1=ckpt.config.level1, level2=level2)
    modules = build_modules(config)
    for name in ("level1_encoder", "level1_decoder"):
        ckpt.load_into(name, modules[name])
    return config, modules


def train_autoencoder(
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    level: int = 1,
    phase: int = 1,
    preset: str = "techno",
    steps: int | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    level1: str | Path | None = None,
    batch_size: int | None = None,
    lambda_rec: float | None = None,
    lambda_phase: float | None = None,
    lr_schedule: str | None = None,
    phase_decoder: str | None = None,
    phase_output: str | None = None,
    workers: int = 0,
    checkpoint_every: int = 1000,
    log_every: int = 10,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    cache_bytes: int | None = None,
) -> dict[str, float]:
    """Train one (level, phase) of the Musika autoencoder on a folder of audio; returns the last metrics.

    ``data_dir``: any folder of audio files (recursive). ``run_dir``: output run directory
    (checkpoints, ``metrics.jsonl``, ``loss_curve.png``). ``steps``: total optimizer steps
    of this run (default: spec §5, 1 M for level 1 and 400 k for level 2; ``small``: fewer,
    :data:`~orchestrion.musika.config.SMALL_STEPS`). See the module
    docstring for ``init``, ``level1`` and ``resume``. ``lambda_rec`` and ``lambda_phase`` replace the
    weights of phase 2's L1 magnitude and phase-derivative terms in a new run, ``lr_schedule``
    (``"constant"``/``"cosine"``) its learning-rate curve; ``phase_decoder``
    (``"shared"``/``"separate"``) and ``phase_output`` (``"angle"``/``"atan2"``/``"demodulated"``) the phase-1 run's
    phase network in a new level-1 phase-2 run.
    """
    from orchestrion.musika.data import DEFAULT_CACHE_BYTES, AudioCropDataset
    from orchestrion.training import Trainer, TrainerConfig, per_process_batch

    if level not in (1, 2) or phase not in (1, 2):
        raise ConfigError(f"--level and --phase must be 1 or 2, got level {level}, phase {phase}")
    phase_choices = {"phase_decoder": phase_decoder, "phase_output": phase_output}
    for field, value in phase_choices.items():
        if value is not None and (level, phase) != (1, 2):
            raise ConfigError(
                f"--{field.replace('_', '-')} chooses the level-1 phase network: it applies to level 1 phase 2 only"
            )
    run_dir = Path(run_dir)
    existing = checkpoint_step_dirs(run_dir)
    if resume and existing:
        config = _load_run(run_dir, "the run to resume").config
        if (config.level, config.phase) != (level, phase):
            raise ConfigError(
                f"{run_dir}: holds a level-{config.level} phase-{config.phase} run, not level {level} phase {phase}"
            )
        for field, value in phase_choices.items():
            if value is not None and value != getattr(config.level1, field):
                raise ConfigError(
                    f"{run_dir}: the run's {field.replace('_', ' ')} is {getattr(config.level1, field)!r}; --resume "
                    f"keeps it (drop --{field.replace('_', '-')} {value}, or start a new run)"
                )
        if lr_schedule is not None and lr_schedule != config.lr_schedule:
            raise ConfigError(
                f"{run_dir}: the run's learning rate is {config.lr_schedule!r}; --resume keeps it "
                f"(drop --lr-schedule {lr_schedule}, or start a new run)"
            )
        modules = build_modules(config)  # the trainer loads the weights of the latest checkpoint
    else:
        # fresh weights are a function of the seed alone (a rerun rebuilds the same initial model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            config, modules = _starting_point(level, phase, preset, init, level1, phase_decoder, phase_output)
        if lambda_rec is not None:
            config = dataclasses.replace(config, lambda_rec=lambda_rec)
        if lambda_phase is not None:
            config = dataclasses.replace(config, lambda_phase=lambda_phase)
        if lr_schedule is not None:
            config = dataclasses.replace(config, lr_schedule=lr_schedule)
    dataset = AudioCropDataset(
        data_dir,
        frames=config.crop_frames,
        silence_db=config.silence_db,
        cache_bytes=DEFAULT_CACHE_BYTES if cache_bytes is None else cache_bytes,
    )
    trainer_config = TrainerConfig(
        max_steps=steps if steps is not None else default_steps(config.preset, config.level, config.phase),
        batch_size=per_process_batch(batch_size or config.batch_size),  # --batch-size is the global batch
        num_workers=workers,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        seed=seed,
        device=device,
        progress=progress,
    )
    trainer = Trainer(
        run_dir,
        model_config=config,
        modules=modules,
        optimizers=build_optimizers(config, modules),
        step_fn=make_step_fn(config),
        dataset=dataset,
        config=trainer_config,
    )
    if trainer.is_main and config.preset not in CPU_PRESETS and trainer.device.type == "cpu":
        import warnings

        warnings.warn(
            f"the {config.preset!r} preset is full size and this run trains on the CPU: expect days to months for "
            f"{trainer_config.max_steps} steps (the speed is printed after the first steps); use a GPU, or "
            "--preset small (CPU-sized) or debug (a quick try-out)",
            stacklevel=2,
        )
    if trainer.is_main and dataset.skipped.skipped:
        run_dir.mkdir(parents=True, exist_ok=True)
        dataset.skipped.write(run_dir / SKIP_REPORT)
    elif trainer.is_main:
        (run_dir / SKIP_REPORT).unlink(missing_ok=True)  # from an earlier run on other data
    if progress and trainer.is_main:
        from rich.console import Console

        console = Console(stderr=True)
        console.print(
            f"level {config.level} phase {config.phase}: {len(dataset.files)} audio files, "
            f"{dataset.total_seconds / 60:.1f} min, {len(dataset)} crops of {dataset.crop} samples per epoch"
        )
        if dataset.skipped.skipped:
            console.print(
                f"[yellow]{len(dataset.skipped.skipped)} unreadable file(s) skipped, reasons in "
                f"{run_dir / SKIP_REPORT}[/]"
            )
    return trainer.fit(resume=resume)
