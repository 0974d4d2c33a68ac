"""Training recipe of the Musika latent GAN (spec §6.3) on the shared trainer.

Every step: one generator forward on fresh training coordinates (§7.1) (+ the real batch's
conditioning curves), one critic update, one generator update, then the EMA update.

=========  ==================================================================================
critic     ½ hinge + w_gp · penalty(∇ₓD at real) + w_rec · reconstruction of real latents
generator  −mean D(fake) (the critic already updated this step)
EMA        ``generator_ema ← decay · generator_ema + (1 − decay) · generator`` after each step
=========  ==================================================================================

A run directory holds the autoencoder the latents came from (its four modules, frozen, in every
checkpoint) and its latent digest; training refuses a chunk folder made by any other autoencoder,
and :func:`orchestrion.musika.models.load_latent_gan` needs nothing but the run directory.
Every ``preview_every`` steps rank 0 writes ``previews/step_NNNNNNNN.wav`` (the EMA generator's
first segments of seed 0, decoded to stereo audio) and a spectrogram ``.png`` next to it; the
previews draw from their own random streams, so they leave training (and resume) untouched.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint
from orchestrion.errors import CheckpointError, DataError
from orchestrion.musika.coordinates import LatentCoordinateGrid, append_conditions
from orchestrion.musika.latent_gan import (
    LatentCritic,
    LatentGANConfig,
    LatentGANRunConfig,
    LatentGenerator,
    generator_loss,
    gradient_penalty,
    hinge_critic_loss,
    reconstruction_loss,
)
from orchestrion.musika.models import AUTOENCODER_MODULES, GAN_KIND, TrainedAutoencoder, load_autoencoder

DEFAULT_STEPS = 1_500_000  # paper (spec §6.3); the reference's default is ≈ 781 k
PREVIEW_DIR = "previews"
PREVIEW_SEED = 0
PREVIEW_CONDITION = 0.5  # conditioning value of the previews (mid-scale)


def build_modules(run: LatentGANRunConfig, autoencoder: TrainedAutoencoder) -> dict[str, nn.Module]:
    """Fresh generator, critic and EMA copy, plus ``autoencoder``'s modules (frozen) for the checkpoints.

    Names (also the checkpoint prefixes): ``generator``, ``critic``, ``generator_ema``,
    ``level1_encoder``, ``level1_decoder``, ``level2_encoder``, ``level2_decoder``.
    """
    generator = LatentGenerator(run.gan)
    if autoencoder.level2 is None:
        raise CheckpointError(f"{autoencoder.path}: the latent GAN needs a level-2 autoencoder")
    modules: dict[str, nn.Module] = {
        "generator": generator,
        "critic": LatentCritic(run.gan),
        "generator_ema": copy.deepcopy(generator).requires_grad_(False).eval(),
        "level1_encoder": autoencoder.level1.encoder,
        "level1_decoder": autoencoder.level1.decoder,
        "level2_encoder": autoencoder.level2.encoder,
        "level2_decoder": autoencoder.level2.decoder,
    }
    for name in AUTOENCODER_MODULES:
        modules[name].requires_grad_(False).eval()
    return modules


def build_optimizers(config: LatentGANConfig, modules: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    """Adam (spec §6.3) for ``generator`` and ``critic``."""
    return {
        name: torch.optim.Adam(modules[name].parameters(), lr=config.learning_rate, betas=(config.beta1, config.beta2))
        for name in ("generator", "critic")
    }


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema ← decay · ema + (1 − decay) · model``, parameter by parameter."""
    for averaged, current in zip(ema.parameters(), model.parameters(), strict=True):
        averaged.lerp_(current.detach(), 1.0 - decay)


def make_step_fn(
    run: LatentGANRunConfig, autoencoder: TrainedAutoencoder, run_dir: Path | None = None, preview_every: int = 0
):
    """The step function; batches are ``{"latents": (B, C, latlen), "conditions": (B, n_cond, latlen)}``.

    ``autoencoder`` wraps the same modules the trainer holds (for the previews).
    """
    config = run.gan
    grid = LatentCoordinateGrid(config)
    conditional = bool(config.conditions)
    penalised = config.gradient_penalty_weight > 0

    def step(ctx, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        real = batch["latents"]
        batch_size = real.shape[0]
        conditions = batch["conditions"] if conditional else None
        # drawn from the global CPU generator: its state is in every checkpoint, so a resumed run draws the same
        coords = grid.training_coordinates(batch_size, torch.default_generator).to(real.device)
        if conditional:
            coords = torch.cat([coords, conditions.to(coords.dtype)], dim=1)  # (B, coord+style+n_cond, latlen)
        with ctx.autocast():
            fake = ctx.module("generator")(coords)  # (B, C, latlen)

        # critic: real and fake in one call; the penalty differentiates the real logits w.r.t. the real input
        real_input = real.detach().requires_grad_(penalised)
        both_conditions = torch.cat([conditions, conditions]) if conditional else None
        with ctx.autocast():
            out = ctx.module("critic")(torch.cat([real_input, fake.detach()]), both_conditions, rebuild=batch_size)
        real_logits, fake_logits = out.logit.split(batch_size)
        hinge = hinge_critic_loss(real_logits, fake_logits)
        if penalised:
            penalty = gradient_penalty(real_logits, real_input, config.gradient_penalty)
        else:
            penalty = hinge.new_zeros(())
        rebuilt = reconstruction_loss(real, out.rebuilt)
        critic_loss = hinge + config.gradient_penalty_weight * penalty + config.reconstruction_weight * rebuilt
        ctx.optimize("critic", critic_loss)

        with ctx.autocast():
            fake_logits_now = ctx.raw("critic")(fake, conditions).logit  # the critic as just updated
        g_loss = generator_loss(fake_logits_now)
        ctx.optimize("generator", g_loss)
        update_ema(ctx.raw("generator_ema"), ctx.raw("generator"), config.ema_decay)

        if preview_every and run_dir is not None and ctx.rank == 0 and (ctx.step + 1) % preview_every == 0:
            target = run_dir / PREVIEW_DIR / f"step_{ctx.step + 1:08d}.wav"
            write_preview(run, ctx.raw("generator_ema"), autoencoder, target)
        return {
            "d_loss": critic_loss.detach(),
            "g_loss": g_loss.detach(),
            "hinge": hinge.detach(),
            "gp": penalty.detach(),
            "rec": rebuilt.detach(),
            "d_real": real_logits.detach().float().mean(),
            "d_fake": fake_logits.detach().float().mean(),
        }

    return step


def generate_latents(
    generator: LatentGenerator, config: LatentGANConfig, seed: int, n_segments: int, condition: float = 0.5
) -> torch.Tensor:
    """Segments 0..n−1 of piece ``seed`` → stereo latents (audio_channels, latent_dim, n·latlen), float32.

    Conditioning (if any) is held at ``condition`` everywhere. The generator's noise comes from
    the global RNG (fork it to keep a training run's stream untouched).
    """
    coords = LatentCoordinateGrid(config).inference_coordinates(seed, 0, n_segments)
    if config.conditions:
        coords = append_conditions(coords, torch.full((len(config.conditions), n_segments * config.latlen), condition))
    device = next(generator.parameters()).device
    with torch.no_grad():
        latents = generator(coords.to(device))  # (n, C, latlen)
    latents = torch.cat(list(latents), dim=-1)  # (C, n·latlen)
    return latents.reshape(config.audio_channels, config.latent_dim, -1).float()


def write_preview(
    run: LatentGANRunConfig, generator: LatentGenerator, autoencoder: TrainedAutoencoder, path: Path
) -> list[Path]:
    """Two segments of seed 0 from ``generator``, decoded to ``path`` (stereo WAV) and a spectrogram PNG."""
    from orchestrion.audio.io import save_audio
    from orchestrion.musika.codec import decode_latents
    from orchestrion.musika.inference import spectrogram_comparison_png

    device = next(generator.parameters()).device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(PREVIEW_SEED)
        latents = generate_latents(generator, run.gan, PREVIEW_SEED, n_segments=2, condition=PREVIEW_CONDITION)
        wave = decode_latents(latents, autoencoder.level1, autoencoder.level2, seed=PREVIEW_SEED).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [save_audio(path, wave)]
    panels = [(f"{path.stem}: {name}", channel) for name, channel in zip(("left", "right"), wave, strict=False)]
    written.append(spectrogram_comparison_png(path.with_suffix(".png"), panels))
    return written


# ----------------------------------------------------------------------------------------- run set-up


def autoencoder_shell(run: LatentGANRunConfig) -> TrainedAutoencoder:
    """An autoencoder of ``run``'s sizes with fresh weights (the trainer loads the stored ones on resume)."""
    from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder

    level1 = Level1Autoencoder(run.autoencoder.level1).eval()
    level2 = Level2Autoencoder(run.autoencoder.level2).eval()
    return TrainedAutoencoder(run.autoencoder, level1, level2, Path(run.autoencoder_run))


def _fresh_run(
    manifest: dict[str, Any], latent_dir: Path, autoencoder_path: str | Path | None, preset: str,
    conditions: tuple[str, ...], overrides: dict[str, Any],
) -> tuple[LatentGANRunConfig, TrainedAutoencoder]:
    """The run config of a new run and its autoencoder, verified against the chunk folder."""
    from orchestrion.musika.inference import latent_digest

    made_by = manifest["autoencoder"]
    source = Path(autoencoder_path) if autoencoder_path is not None else Path(str(made_by.get("run", "")))
    if autoencoder_path is None and not source.exists():
        raise DataError(
            f"{latent_dir}: the autoencoder that made these latents ({source}) is not there; "
            "pass --autoencoder AE_RUN (the GAN run keeps a copy of it)"
        )
    autoencoder = load_autoencoder(source, accept_gan_run=True)
    digest = latent_digest(autoencoder)
    if digest != made_by["digest"]:
        raise DataError(
            f"{latent_dir}: latents were made by autoencoder {made_by['digest']} ({made_by.get('run', '?')}), "
            f"but {source} has digest {digest}; pass the autoencoder that made them or prepare the latents again"
        )
    if autoencoder.level2 is None or autoencoder.level2.config.latent_dim != int(manifest["latent_dim"]):
        raise DataError(f"{source}: not the level-2 autoencoder of {latent_dir} (latent dims differ)")
    gan = LatentGANConfig.preset_config(
        preset,
        latent_dim=int(manifest["latent_dim"]),
        audio_channels=int(manifest["channels"]),
        conditions=conditions,
        **overrides,
    )
    run = LatentGANRunConfig(
        gan=gan,
        autoencoder=autoencoder.config,
        autoencoder_digest=digest,
        autoencoder_run=str(source),
        conditions={name: manifest["conditions"][name] for name in conditions if name in manifest["conditions"]},
        frames_per_second=float(manifest["frames_per_second"]),
    )
    return run, autoencoder


def train_latent_gan(
    latent_dir: str | Path,
    run_dir: str | Path,
    *,
    autoencoder: str | Path | None = None,
    preset: str = "small",
    conditions: tuple[str, ...] = (),
    steps: int | None = None,
    resume: bool = False,
    batch_size: int | None = None,
    beta1: float | None = None,
    gradient_penalty: str | None = None,
    gradient_penalty_weight: float | None = None,
    upsampling: str | None = None,
    workers: int = 0,
    checkpoint_every: int = 1000,
    preview_every: int = 5000,
    log_every: int = 10,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, float]:
    """Train a latent GAN on a latent-chunk folder (``orchestrion musika prepare-latents``); returns the last metrics.

    ``autoencoder``: the level-2 run that made the latents (default: the run named in the folder's
    manifest); its latent digest must match the folder's. ``preset`` gives the sizes
    (:data:`~orchestrion.musika.latent_gan.PRESETS`); ``latent_dim`` and channels come from the data.
    ``conditions``: curves of the folder the GAN is conditioned on (e.g. ``("note_density",)``).
    ``batch_size``: the global batch (split over DDP processes). ``steps``: total steps (default
    1.5 M, the paper's). ``beta1``, ``gradient_penalty``, ``gradient_penalty_weight`` and ``upsampling``
    override the preset (reference: 0.9, ``"reference"``, 10, ``"transposed"``). With ``resume`` the run
    continues with the config stored in ``run_dir``.
    """
    from orchestrion.musika.latent_data import LatentChunkDataset, read_manifest
    from orchestrion.training import Trainer, TrainerConfig, per_process_batch

    latent_dir, run_dir = Path(latent_dir), Path(run_dir)
    manifest = read_manifest(latent_dir)
    if resume and checkpoint_step_dirs(run_dir):
        ckpt = load_checkpoint(run_dir)
        if ckpt.kind != GAN_KIND:
            raise CheckpointError(f"{run_dir}: holds a {ckpt.kind!r} run, not a latent-GAN run to resume")
        run: LatentGANRunConfig = ckpt.config
        trained = autoencoder_shell(run)
    else:
        overrides: dict[str, Any] = {}
        if beta1 is not None:
            overrides["beta1"] = beta1
        if gradient_penalty is not None:
            overrides["gradient_penalty"] = gradient_penalty
        if gradient_penalty_weight is not None:
            overrides["gradient_penalty_weight"] = gradient_penalty_weight
        if upsampling is not None:
            overrides["upsampling"] = upsampling
        run, trained = _fresh_run(manifest, latent_dir, autoencoder, preset, tuple(conditions), overrides)
    global_batch = batch_size or run.gan.batch_size
    share = per_process_batch(global_batch)
    dataset = LatentChunkDataset(
        latent_dir, run.gan.latlen, run.gan.conditions, autoencoder_digest=run.autoencoder_digest
    )
    if dataset.latent_dim != run.gan.latent_dim or dataset.channels != run.gan.audio_channels:
        raise DataError(
            f"{latent_dir}: latents of {dataset.channels}×{dataset.latent_dim} dims, "
            f"the run was made for {run.gan.audio_channels}×{run.gan.latent_dim}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # fresh weights are a function of the seed alone
        modules = build_modules(run, trained)
    trainer = Trainer(
        run_dir,
        model_config=run,
        modules=modules,
        optimizers=build_optimizers(run.gan, modules),
        step_fn=make_step_fn(run, trained, run_dir, preview_every),
        dataset=dataset,
        config=TrainerConfig(
            max_steps=steps if steps is not None else DEFAULT_STEPS,
            batch_size=share,
            num_workers=workers,
            checkpoint_every=checkpoint_every,
            log_every=log_every,
            seed=seed,
            device=device,
            progress=progress,
        ),
    )
    if progress and trainer.is_main:
        from rich.console import Console

        seconds = float(dataset.frames.sum()) / dataset.frames_per_second
        Console(stderr=True).print(
            f"latent GAN ({run.gan.preset}, seq_len {run.gan.seq_len}, "
            f"conditions {', '.join(run.gan.conditions) or 'none'}): "
            f"{len(dataset.files)} chunks, {seconds / 60:.1f} min of latents, batch {global_batch}"
        )
    return trainer.fit(resume=resume)
