"""Level-1 autoencoder widths on the CPU: cost per frame, training speed and early loss (design data of `small`).

For each candidate width (``Level1Config`` presets plus scaled variants of the reference widths) this
trains phase 1 -- the L1 of normalised log-power, Adam (β 0.5 / 0.999), on random 128-frame crops of
a folder of real audio, exactly the maths of ``orchestrion.musika.train`` -- for a fixed wall-clock
budget, and prints:

  MAC/frame     multiply-accumulates of one forward pass per STFT frame (encoder + phase-1 decoder),
                counted on the convolutions
  params        trainable parameters of encoder + decoder
  steps/s       optimizer steps per second (data loading, STFT, forward, backward, Adam)
  frames/s      training frames per second = steps/s x batch x 128
  loss@t        mean L1 of the last 20 steps when the budget ran out (lower is better; the same
                seconds for every candidate, so this is quality per CPU time early in training)
  held-out      with --heldout DIR: the same L1 on every frame of the files in DIR, the model in
                eval mode (generalisation, and free of the training batches' noise)

``small-unet`` is ``small`` without its linear shortcut (the small preset before issue 13); ``--lr``
takes several rates and tries each candidate with each.

The machine is shared: the 1-minute load average is printed before every run; compare candidates
run back to back, and rerun when the load changed a lot.

Usage:  python benchmarks/musika_ae_preset_speed.py AUDIO_DIR [--seconds 120] [--batch 32] [--lr 3e-4 1e-3]
                 [--candidates debug eighth quarter half default small small-unet] [--threads 2]
                 [--heldout DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch
from torch import nn

from orchestrion.audio.spectral import wave_to_features
from orchestrion.musika.autoencoder import Level1Decoder, Level1Encoder
from orchestrion.musika.config import Level1Config
from orchestrion.musika.data import AudioCropDataset
from orchestrion.musika.layers import merge_windows, split_windows
from orchestrion.system import cpu_description

REFERENCE = Level1Config()


def _scaled(fraction: float) -> Level1Config:
    """The reference widths times ``fraction`` (rounded to multiples of 8), latent dim kept at 128."""

    def scale(width: int) -> int:
        return max(8, round(width * fraction / 8) * 8)

    return dataclasses.replace(
        REFERENCE,
        with_phase=False,
        encoder_channels=tuple(scale(w) for w in REFERENCE.encoder_channels),
        decoder_channels=tuple(scale(w) for w in REFERENCE.decoder_channels),
        decoder_head_channels=scale(REFERENCE.decoder_head_channels),
    )


def candidates() -> dict[str, Level1Config]:
    presets = {name: Level1Config.preset(name, with_phase=False) for name in ("debug", "small", "default")}
    scaled = {"eighth": _scaled(1 / 8), "quarter": _scaled(1 / 4), "half": _scaled(1 / 2)}
    unet = {"small-unet": dataclasses.replace(presets["small"], linear_shortcut=False)}
    return {**presets, **scaled, **unet}


def macs_per_frame(config: Level1Config) -> int:
    """Forward multiply-accumulates per STFT frame of encoder + decoder, counted by conv hooks."""
    encoder, decoder = Level1Encoder(config).eval(), Level1Decoder(config).eval()
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose1d):  # every input element meets out_channels x kernel weights
            total += inputs[0].numel() * module.out_channels * module.kernel_size[0]
        else:
            total += output.numel() * module.in_channels * module.kernel_size[0]

    hooks = [
        m.register_forward_hook(count)
        for m in (*encoder.modules(), *decoder.modules())
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))
    ]
    frames = config.window_frames
    with torch.no_grad():
        decoder(encoder(torch.zeros(1, config.n_bins, frames)))
    for hook in hooks:
        hook.remove()
    return total // frames


def heldout_l1(encoder: Level1Encoder, decoder: Level1Decoder, features: list[torch.Tensor]) -> float:
    """Mean L1 of the eval-mode model over every whole decoder window of each (1, 513, K) file."""
    encoder.eval(), decoder.eval()
    window = decoder.config.window_frames
    errors = []
    with torch.no_grad():
        for target in features:
            target = target[..., : target.shape[-1] // window * window]
            magnitude, _ = decoder(split_windows(encoder(target), window))
            errors.append((merge_windows(magnitude, 1) - target).abs().mean())
    return float(torch.stack(errors).mean())


def train_for(
    config: Level1Config, data: AudioCropDataset, seconds: float, batch: int, lr: float,
    heldout: list[torch.Tensor] | None = None,
) -> dict:
    torch.manual_seed(0)
    encoder, decoder = Level1Encoder(config).train(), Level1Decoder(config).train()
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    losses, step, seed = [], 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        wave = torch.stack([data[seed + i] for i in range(batch)])
        seed += batch
        target = wave_to_features(wave)  # (B, 513, 128)
        magnitude, _ = decoder(split_windows(encoder(target), config.window_frames))
        loss = (merge_windows(magnitude, batch) - target).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
    elapsed = time.perf_counter() - start
    tail = losses[-20:]
    return {
        "params": sum(p.numel() for p in params),
        "steps_per_s": step / elapsed,
        "frames_per_s": step * batch * 128 / elapsed,
        "steps": step,
        "loss": sum(tail) / len(tail),
        "heldout": None if heldout is None else heldout_l1(encoder, decoder, heldout),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio_dir")
    parser.add_argument("--seconds", type=float, default=120.0, help="wall-clock training budget per candidate")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, nargs="+", default=[3e-4])
    parser.add_argument("--candidates", nargs="+", default=["debug", "eighth", "quarter", "small", "half"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--heldout", help="folder of held-out audio scored after training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = AudioCropDataset(args.audio_dir)
    heldout = None
    if args.heldout:
        from orchestrion.audio.io import collect_audio_files, load_audio

        heldout = [wave_to_features(torch.from_numpy(load_audio(path, channels=1)))
                   for path in collect_audio_files(args.heldout)]
    print(
        f"{len(data.files)} files, {data.total_seconds / 60:.1f} min; batch {args.batch}, "
        f"{args.seconds:.0f} s per candidate, {args.threads} threads; {cpu_description()[0]}"
    )
    print(
        f"{'candidate':10} {'lr':>7} {'load':>5} {'MAC/frame':>10} {'params':>9} {'steps/s':>8} {'frames/s':>9} "
        f"{'steps':>6} {'loss@t':>7} {'held-out':>8}"
    )
    configs = candidates()
    for name in args.candidates:
        for lr in args.lr:
            config = configs[name]
            load = os.getloadavg()[0]
            result = train_for(config, data, args.seconds, args.batch, lr, heldout)
            held = "" if result["heldout"] is None else f"{result['heldout']:8.4f}"
            print(
                f"{name:10} {lr:7.0e} {load:5.1f} {macs_per_frame(config):10,d} {result['params']:9,d} "
                f"{result['steps_per_s']:8.2f} {result['frames_per_s']:9.0f} {result['steps']:6d} "
                f"{result['loss']:7.4f} {held:>8}",
                flush=True,
            )


if __name__ == "__main__":
    main()
