"""Latent-GAN training (spec §6.3) on the shared trainer: a tiny GAN on a latent-chunk folder, resume,
the run's autoencoder, and the errors a user can run into."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from latent_support import write_latent_chunks
from typer.testing import CliRunner

from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint, save_checkpoint
from orchestrion.cli import app, main
from orchestrion.errors import CheckpointError, DataError
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.inference import latent_digest
from orchestrion.musika.latent_gan import LatentGenerator
from orchestrion.musika.models import load_autoencoder, load_latent_gan
from orchestrion.musika.train import build_modules as build_autoencoder_modules
from orchestrion.musika.train_gan import build_modules, generate_latents, train_latent_gan
from orchestrion.system import torch_threads

TRAIN_STEPS = 300
GAN_MODULES = ("generator", "critic", "generator_ema")
AE_MODULES = ("level1_encoder", "level1_decoder", "level2_encoder", "level2_decoder")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread avoids OpenMP barrier stalls on a busy 2-core machine
    (measured 40x slower with 2 threads under load); restored afterwards for the other tests."""
    with torch_threads(1):
        yield


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(run: Path, module: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(run).module_state(module)


def _save_autoencoder(path: Path, seed: int) -> Path:
    """A debug level-2 autoencoder run (untrained weights, saved as the AE trainer does)."""
    config = AutoencoderTrainingConfig.preset_config("debug", level=2, phase=2)
    torch.manual_seed(seed)
    save_checkpoint(path / "checkpoints" / "step_00000001", config=config, modules=build_autoencoder_modules(config))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A debug autoencoder, a chunk folder of its latent shape and digest, and a GAN trained 300 steps on it
    (≈ 10 s: enough for the stereo channels to start correlating as in the data)."""
    root = tmp_path_factory.mktemp("latent_gan")
    autoencoder = _save_autoencoder(root / "ae", seed=0)
    digest = latent_digest(load_autoencoder(autoencoder))
    write_latent_chunks(root / "latents", latent_dim=8, digest=digest)
    train_latent_gan(
        root / "latents", root / "gan", autoencoder=autoencoder, preset="debug", steps=TRAIN_STEPS,
        log_every=5, checkpoint_every=50, preview_every=TRAIN_STEPS, progress=False,
    )  # fmt: skip
    return {"ae": autoencoder, "latents": root / "latents", "gan": root / "gan", "digest": Path(digest)}


def test_tiny_gan_trains_the_critic_and_keeps_a_preview(trained) -> None:
    # measured (debug preset, batch 8): hinge ≈ 1.2 at step 5 → ≈ 0.3 by step 100; rec ≈ 8 → ≈ 1.3
    metrics = _metrics(trained["gan"])
    assert [m["step"] for m in metrics] == list(range(5, TRAIN_STEPS + 1, 5))
    first, last = metrics[0], metrics[-4:]
    assert sum(m["hinge"] for m in last) / 4 < 0.8 * first["hinge"], (first["hinge"], [m["hinge"] for m in last])
    assert sum(m["rec"] for m in last) / 4 < first["rec"] / 2
    assert all(m["gp"] > 0 for m in metrics)
    assert (trained["gan"] / "loss_curve.png").stat().st_size > 0
    preview = trained["gan"] / "previews" / f"step_{TRAIN_STEPS:08d}.wav"
    info = sf.info(preview)
    # two segments of latlen 32 frames, 2048 samples per level-2 frame, plus the iSTFT tail of 768
    assert (info.channels, info.samplerate, info.frames) == (2, 22050, 2 * 32 * 2048 + 768)
    assert preview.with_suffix(".png").stat().st_size > 0


def test_ema_generator_moves_slowly_and_training_leaves_the_autoencoder_alone(trained) -> None:
    steps = [path for _, path in checkpoint_step_dirs(trained["gan"])]
    early, late = load_checkpoint(steps[0]), load_checkpoint(steps[-1])
    for name in AE_MODULES:
        saved = load_checkpoint(trained["ae"]).module_state(name)
        assert all(torch.equal(saved[k], late.module_state(name)[k]) for k in saved), name
    generator, ema = late.module_state("generator"), late.module_state("generator_ema")
    weight = "out.weight"
    moved = (late.module_state("generator")[weight] - early.module_state("generator")[weight]).abs().mean()
    moved_ema = (late.module_state("generator_ema")[weight] - early.module_state("generator_ema")[weight]).abs().mean()
    assert 0 < moved_ema < moved / 3  # decay 0.999 over 250 steps: the EMA travels ≈ 22 % of the way
    assert not torch.equal(generator[weight], ema[weight])


def _stereo_correlation(generator: LatentGenerator, config) -> tuple[float, float]:
    """Mean over 4 pieces of corr(left, right) and of |left − right| of the generated latents."""
    correlations, differences = [], []
    for seed in range(4):
        left, right = generate_latents(generator, config, seed=seed, n_segments=2).flatten(1)
        correlations.append(torch.corrcoef(torch.stack([left, right]))[0, 1].item())
        differences.append((left - right).abs().mean().item())
    return sum(correlations) / 4, sum(differences) / 4


def test_stereo_channels_differ_but_learn_to_correlate(trained) -> None:
    """The data's left/right latents are strongly correlated, not equal; after 300 steps the generator's
    channels correlate clearly more than at initialisation (measured −0.10 → 0.07) and still differ."""
    ckpt = load_checkpoint(trained["gan"])
    torch.manual_seed(0)
    generator = LatentGenerator(ckpt.config.gan)  # the run's initial weights (seed 0)
    initial, _ = _stereo_correlation(generator, ckpt.config.gan)
    ckpt.load_into("generator", generator)
    trained_correlation, difference = _stereo_correlation(generator, ckpt.config.gan)
    assert trained_correlation > initial + 0.1, (initial, trained_correlation)
    assert difference > 0.05


def test_trained_run_loads_for_sampling(trained) -> None:
    model = load_latent_gan(trained["gan"])
    assert model.config.preset == "debug" and model.config.latent_dim == 8
    assert latent_digest(model.autoencoder) == str(trained["digest"]) == model.run.autoencoder_digest
    assert not model.generator.training
    ema = load_checkpoint(trained["gan"]).module_state("generator_ema")
    assert all(torch.equal(v, model.generator.state_dict()[k]) for k, v in ema.items())
    assert model.frames_per_second == pytest.approx(22050 / 2048)
    latents = generate_latents(model.generator, model.config, seed=1, n_segments=3)
    assert latents.shape == (2, 8, 3 * 32)
    assert latents.abs().max() <= 1


def test_resume_continues_bit_exactly(trained, tmp_path: Path) -> None:
    """4 steps + resume to 6 give the same weights, EMA and critic as 6 steps in one go."""
    kwargs = dict(autoencoder=trained["ae"], preset="debug", log_every=1, preview_every=0, progress=False)
    train_latent_gan(trained["latents"], tmp_path / "straight", steps=6, **kwargs)
    train_latent_gan(trained["latents"], tmp_path / "split", steps=4, checkpoint_every=2, **kwargs)
    train_latent_gan(trained["latents"], tmp_path / "split", steps=6, resume=True, checkpoint_every=2, **kwargs)
    assert [m["step"] for m in _metrics(tmp_path / "split")] == [1, 2, 3, 4, 5, 6]
    assert _metrics(tmp_path / "split")[-1]["d_loss"] == _metrics(tmp_path / "straight")[-1]["d_loss"]
    for name in GAN_MODULES:
        a, b = _weights(tmp_path / "straight", name), _weights(tmp_path / "split", name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_latents_of_another_autoencoder_are_refused(trained, tmp_path: Path) -> None:
    other = _save_autoencoder(tmp_path / "other_ae", seed=1)
    with pytest.raises(DataError, match=r"latents were made by autoencoder .* but .*other_ae has digest"):
        train_latent_gan(trained["latents"], tmp_path / "run", autoencoder=other, preset="debug", steps=1,
                         progress=False)
    # resuming a run on a folder made by another autoencoder
    foreign = tmp_path / "foreign"
    write_latent_chunks(foreign, latent_dim=8, digest="f" * 16)
    with pytest.raises(DataError, match="prepare the latents again with the GAN's autoencoder"):
        train_latent_gan(foreign, trained["gan"], resume=True, steps=TRAIN_STEPS + 1, progress=False)
    # the manifest's autoencoder is used when --autoencoder is not given; here it does not exist
    with pytest.raises(DataError, match=r"runs/test-ae\) is not there; pass --autoencoder"):
        train_latent_gan(trained["latents"], tmp_path / "run2", preset="debug", steps=1, progress=False)


def test_a_gan_run_serves_as_the_autoencoder_of_a_new_gan(trained, tmp_path: Path) -> None:
    """The bundled model is a GAN run: its autoencoder must be usable to train a GAN on one's own music."""
    run = tmp_path / "second"
    train_latent_gan(trained["latents"], run, autoencoder=trained["gan"], preset="debug", steps=2,
                     log_every=1, checkpoint_every=2, preview_every=0, progress=False)
    second = load_checkpoint(run)
    assert second.config.autoencoder_digest == load_checkpoint(trained["gan"]).config.autoencoder_digest
    for module in AE_MODULES:  # the copy stored in the new run is the first run's autoencoder
        for name, tensor in _weights(trained["gan"], module).items():
            assert torch.equal(second.module_state(module)[name], tensor), (module, name)


def test_model_directories_of_another_kind_are_refused(trained, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="--model must be a Musika latent-GAN run, this one holds"):
        load_latent_gan(trained["ae"])
    with pytest.raises(CheckpointError, match="--model must be a Musika autoencoder run, this one holds"):
        load_autoencoder(trained["gan"])
    with pytest.raises(CheckpointError, match=r"holds a 'musika\.autoencoder_training' run, not a latent-GAN run"):
        train_latent_gan(trained["latents"], trained["ae"], resume=True, steps=2, progress=False)
    # a GAN checkpoint whose stored autoencoder is not the one it was trained on
    ckpt = load_checkpoint(trained["gan"])
    other = load_autoencoder(_save_autoencoder(tmp_path / "other_ae", seed=1))
    modules = build_modules(ckpt.config, other)
    for name in GAN_MODULES:
        ckpt.load_into(name, modules[name])
    save_checkpoint(tmp_path / "swapped", config=ckpt.config, modules=modules)
    with pytest.raises(CheckpointError, match="the autoencoder stored in this GAN run has latent digest"):
        load_latent_gan(tmp_path / "swapped")


def test_cli_trains_a_conditional_gan_and_reports_bad_input(trained, tmp_path: Path, capsys) -> None:
    runner = CliRunner()
    result = runner.invoke(app, [
        "musika", "train-gan", str(trained["latents"]), "--out", str(tmp_path / "cond"), "--autoencoder",
        str(trained["ae"]), "--preset", "debug", "--conditions", "note_density", "--steps", "2", "--preview-every", "0",
    ])  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    model = load_latent_gan(tmp_path / "cond")
    assert model.config.conditions == ("note_density",)
    assert model.conditions == {"note_density": json.loads((trained["latents"] / "manifest.json").read_text())[
        "conditions"]["note_density"]}
    assert model.generator.config.input_channels == 16 + 16 + 1
    # the reference implementation's optimiser and regulariser as options
    result = runner.invoke(app, [
        "musika", "train-gan", str(trained["latents"]), "--out", str(tmp_path / "ref"), "--autoencoder",
        str(trained["ae"]), "--preset", "debug", "--beta1", "0.9", "--gradient-penalty", "reference", "--steps", "2",
        "--preview-every", "0",
    ])  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    config = load_latent_gan(tmp_path / "ref").config
    assert (config.beta1, config.gradient_penalty, config.conditions) == (0.9, "reference", ())
    assert _metrics(tmp_path / "ref")[-1]["gp"] > 0

    old = sys.argv
    sys.argv = ["orchestrion", "musika", "train-gan", str(trained["latents"]), "--out", str(tmp_path / "x"),
                "--autoencoder", str(trained["ae"]), "--conditions", "loudness", "--steps", "1"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = old
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "conditions must be distinct names" in err


def test_a_fresh_process_resolves_the_run_kind(trained) -> None:
    """`orchestrion inspect RUN` (generic checkpoint loading) knows the GAN kinds without importing the GAN."""
    import subprocess

    code = "import sys; from orchestrion.checkpoint import load_checkpoint; print(load_checkpoint(sys.argv[1]).kind)"
    out = subprocess.run([sys.executable, "-c", code, str(trained["gan"])], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "musika.latent_gan_run"


@pytest.mark.slow
def test_torchrun_two_ranks_train_with_the_global_batch(trained, tmp_path: Path) -> None:
    """DDP (gloo, 2 processes): --batch-size 8 is the global batch (4 per rank), and R1's double backward
    runs under DistributedDataParallel; an indivisible global batch is one clear error."""
    import os
    import subprocess

    def torchrun(run: Path, batch: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "orchestrion.cli", "musika", "train-gan", str(trained["latents"]), "--out", str(run),
                "--autoencoder", str(trained["ae"]), "--preset", "debug", "--steps", "3",
                "--batch-size", str(batch), "--preview-every", "0",
            ],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip

    result = torchrun(tmp_path / "ddp", 8)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch 8" in " ".join(result.stderr.split())
    assert [step for step, _ in checkpoint_step_dirs(tmp_path / "ddp")] == [3]
    state = load_checkpoint(tmp_path / "ddp").training_state()
    assert (state["world_size"], state["trainer_config"]["batch_size"]) == (2, 4)  # 4 per rank = 8 in all
    load_latent_gan(tmp_path / "ddp")
    result = torchrun(tmp_path / "odd", 7)
    assert result.returncode != 0
    assert "the global batch size 7 is not a multiple of the 2 training processes" in result.stderr


@pytest.mark.slow
def test_conditional_gan_on_latents_of_a_rendered_chorale(tmp_path: Path) -> None:
    """End to end on real audio: a built-in chorale rendered with the bundled soundfont → prepare-latents
    (madmom note density and tempo) → a conditional GAN trained 100 steps, with the autoencoder found
    through the folder's manifest; its previews decode and the run loads for sampling."""
    from train_support import write_rendered_excerpt

    from orchestrion.musika.latent_prepare import prepare_latents

    audio = write_rendered_excerpt(tmp_path, seconds=8.0)  # 85 level-2 frames
    autoencoder = _save_autoencoder(tmp_path / "ae", seed=0)
    prepare_latents(audio, autoencoder, tmp_path / "latents", min_frames=32, device="cpu")
    metrics = train_latent_gan(
        tmp_path / "latents", tmp_path / "gan", preset="debug", conditions=("note_density", "tempo"), steps=100,
        log_every=10, preview_every=100, progress=False,
    )  # fmt: skip
    history = _metrics(tmp_path / "gan")
    assert metrics["hinge"] < history[0]["hinge"] and metrics["rec"] < history[0]["rec"]
    assert sf.info(tmp_path / "gan" / "previews" / "step_00000100.wav").channels == 2
    model = load_latent_gan(tmp_path / "gan")
    assert set(model.conditions) == {"note_density", "tempo"} and model.conditions["tempo"]["bpm_max"] == 200.0
    assert Path(model.run.autoencoder_run).resolve() == autoencoder.resolve()  # found through the manifest
    assert model.autoencoder.path == load_checkpoint(tmp_path / "gan").path  # but loaded from the GAN run
