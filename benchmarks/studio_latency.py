"""Click-to-first-audio latency of `orchestrion studio`, in a real browser.

Builds a conditional latent-GAN run of a preset (random weights: latency does not depend on the
values), starts `orchestrion studio` on localhost with it, and drives Debian's headless chromium
(Playwright, kept off the network) through the endless-audio tab: click Play, wait until the audio
element is playing (its clock moved), Stop. The first click is "cold" (the server loads the model
and builds the fused decoder); every later one is "warm", each in a fresh tab.

Needs: chromium (/usr/bin/chromium), ffmpeg, gradio and playwright (pip install -e '.[test]').

Usage:  python benchmarks/studio_latency.py [--preset small] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from orchestrion.checkpoint import save_checkpoint
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.inference import latent_digest
from orchestrion.musika.latent_gan import LatentGANConfig, LatentGANRunConfig, LatentGenerator
from orchestrion.musika.models import TrainedAutoencoder
from orchestrion.system import cpu_description

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
CONDITIONS = {"note_density": {"method": "benchmark"}, "tempo": {"bpm_min": 60.0, "bpm_max": 200.0}}


def write_run(folder: Path, preset: str) -> Path:
    """A conditional latent-GAN run directory of ``preset`` (random weights) that the studio loads."""
    torch.manual_seed(0)
    ae_config = AutoencoderTrainingConfig.preset_config(preset, level=2, phase=2)
    level1, level2 = Level1Autoencoder(ae_config.level1).eval(), Level2Autoencoder(ae_config.level2).eval()
    gan_config = LatentGANConfig.preset_config(preset, conditions=tuple(CONDITIONS),
                                               latent_dim=ae_config.level2.latent_dim)
    run = LatentGANRunConfig(
        gan=gan_config, autoencoder=ae_config,
        autoencoder_digest=latent_digest(TrainedAutoencoder(ae_config, level1, level2, folder)),
        autoencoder_run="random", conditions=CONDITIONS, frames_per_second=ae_config.level2.frames_per_second,
    )
    modules = {"generator_ema": LatentGenerator(gan_config).eval(), "level1_encoder": level1.encoder,
               "level1_decoder": level1.decoder, "level2_encoder": level2.encoder, "level2_decoder": level2.decoder}
    save_checkpoint(folder / "checkpoints" / "step_00000001", config=run, modules=modules)
    return folder


def start_studio(model: Path, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(log, "wb") as sink:
        server = subprocess.Popen([sys.executable, "-m", "orchestrion.cli", "studio", "--port", str(port),
                                   "--musika-model", str(model)], stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the studio exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return server, url
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the studio did not answer:\n{log.read_text()}") from None
            time.sleep(0.5)


def click_to_first_audio(browser, url: str) -> float:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.wait_for_selector("#musika-play")
        started = time.monotonic()
        page.click("#musika-play")
        page.wait_for_function(
            "() => { const a = document.querySelector('#musika-audio audio'); return a && a.currentTime > 0; }")
        latency = time.monotonic() - started
        page.click("#musika-stop")
        page.wait_for_function("() => document.querySelector('#musika-status').innerText.startsWith('Done')")
        return latency
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="latent-GAN/autoencoder preset: small, techno, piano, debug")
    parser.add_argument("--repeats", type=int, default=5, help="warm clicks after the cold one")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the server")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"CPU: {cpu_description()[0]}; server threads: {args.threads}; preset: {args.preset}")
    with tempfile.TemporaryDirectory() as folder:
        model = write_run(Path(folder) / "run", args.preset)
        server, url = start_studio(model, args.threads, Path(folder) / "server.log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                latencies = [click_to_first_audio(browser, url) for _ in range(args.repeats + 1)]
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    cold, warm = latencies[0], latencies[1:]
    print(f"click to first audio: cold {cold:.2f} s (model load included); warm median {statistics.median(warm):.2f} s "
          f"(min {min(warm):.2f}, max {max(warm):.2f}, {len(warm)} clicks, each in a fresh tab)")


if __name__ == "__main__":
    main()
