"""Musika's two-level spectrogram autoencoder (spec musika.md §3-4), 22.05 kHz reference sizes.

Layout everywhere: (B, channels, frames). Spectrograms are (B, 513 bins, K frames), level-1 latents
(B, 128, K), level-2 latents (B, 64, K / 8) for techno or (B, 32, K / 16) for piano.

    waveform --STFT--> (B, 513, K) --Enc1--> (B, 128, K) --Enc2--> (B, 64, K/8)
    (B, 64, 8) --Dec2--> (B, 128, 64) --Dec1--> magnitude, phase (B, 513, 64) --iSTFT--> waveform

Modules read top to bottom like the paper's figure: encoders, decoders, then the per-level
wrappers that handle windowing. The models are pure (no I/O); see :mod:`orchestrion.musika.codec`
for arbitrary-length audio and latent files.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from orchestrion.audio.spectral import HOP, features_to_wave, wave_to_features
from orchestrion.musika.config import Level1Config, Level2Config
from orchestrion.musika.layers import ConvBlock, he_uniform_, merge_windows, split_windows

# ---------------------------------------------------------------------------------------------
# Level 1: one STFT frame <-> one latent
# ---------------------------------------------------------------------------------------------


class Level1Encoder(nn.Module):
    """Enc1: (B, 513, T) -> (B, 128, T) in (-1, 1), purely frame-wise (every kernel 1, no padding)."""

    def __init__(self, config: Level1Config) -> None:
        super().__init__()
        self.config = config
        blocks, channels = [], config.n_bins
        for width in config.encoder_channels:
            blocks.append(
                ConvBlock(
                    channels, width, 1, padding="valid", bn_momentum=config.bn_momentum, bn_eps=config.bn_eps
                )
            )
            channels = width
        self.blocks = nn.Sequential(*blocks)  # (B, 513, T) -> (B, 768, T)
        self.out = nn.Conv1d(channels, config.latent_dim, 1)  # -> (B, 128, T)
        he_uniform_(self)
        self.shortcut = _linear_shortcut(config.n_bins, config.latent_dim) if config.linear_shortcut else None

    def forward(self, features: Tensor) -> Tensor:
        x = self.out(self.blocks(features))
        if self.shortcut is not None:
            x = x + self.shortcut(features)
        return torch.tanh(x)


class Level1Decoder(nn.Module):
    """Dec1, the U-Net of spec §3.2: latents (B, 128, 64) -> magnitude, phase (B, 513, 64) in [-1, 1].

    Down path g0 (1x1) and g1..g3 (k3/s2, TF "same"); up path of k4/s2 transposed convs, each adding
    the skip of matching width; a 1x1 "h" block and a plain 1x1 output conv, clipped to [-1, 1].
    With ``phase_decoder="shared"`` (the reference) output channels 0..512 are normalised log-power,
    513..1025 phase/π; with ``"separate"`` this U-Net makes the magnitude alone and ``phase_net``, a
    second U-Net of the same widths, the phase. In phase-1 mode (``with_phase=False``) only the
    magnitude exists and ``forward`` returns ``(magnitude, None)``.
    """

    def __init__(self, config: Level1Config, out_channels: int | None = None) -> None:
        super().__init__()
        self.config = config
        widths = config.decoder_channels

        def block(cin: int, cout: int, kernel: int, stride: int = 1, transposed: bool = False) -> ConvBlock:
            return ConvBlock(
                cin, cout, kernel, stride, transposed=transposed, noise=config.noise,
                bn_momentum=config.bn_momentum, bn_eps=config.bn_eps,
            )

        self.stem = block(config.latent_dim, widths[0], 1)  # g0: (B, 768, 64)
        # g1..g3: (B, 512, 32), (B, 384, 16), (B, 320, 8)
        self.down = nn.ModuleList(block(widths[i - 1], widths[i], 3, 2) for i in range(1, len(widths)))
        # u3, u2, u1: (B, 384, 16), (B, 512, 32), (B, 768, 64); each input is (previous up + skip)
        self.up = nn.ModuleList(
            block(widths[i], widths[i - 1], 4, 2, transposed=True) for i in range(len(widths) - 1, 0, -1)
        )
        self.head = block(widths[0], config.decoder_head_channels, 1)  # h: (B, 1280, 64)
        if out_channels is None:
            shared_phase = config.with_phase and config.phase_decoder == "shared"
            out_channels = config.n_bins * (2 if shared_phase else 1)
        self.out = nn.Conv1d(config.decoder_head_channels, out_channels, 1)  # (B, 1026, 64) or (B, 513, 64)
        he_uniform_(self)
        self.shortcut = _linear_shortcut(config.latent_dim, out_channels) if config.linear_shortcut else None
        separate_phase = config.with_phase and config.phase_decoder == "separate"
        self.phase_net = _phase_unet(config) if separate_phase else None
        self.magnitude_frozen = False

    @property
    def with_phase(self) -> bool:
        return self.config.with_phase

    def enable_phase(self, phase_decoder: str | None = None, phase_output: str | None = None) -> None:
        """Phase-1 -> phase-2 decoder; ``phase_decoder`` (``"shared"``/``"separate"``) and ``phase_output``
        (``"angle"``/``"atan2"``/``"demodulated"``) override the config's (:meth:`Level1Config.with_phase_network`).

        Shared: 513 freshly initialised phase channels are added to the output conv; the magnitude
        half keeps its weights, so the magnitude output is unchanged (spec §3.2 [PROPOSED]).
        Separate: the phase U-Net starts as a copy of this one's layers (features that already
        describe the frame) with a fresh output conv, and :meth:`freeze_magnitude` keeps the
        magnitude exactly as phase 1 left it. ``self.config`` becomes the config to save.
        """
        if self.with_phase:
            return
        config = self.config.with_phase_network(phase_decoder, phase_output)
        old = self.out
        if config.phase_decoder == "separate":
            self.phase_net = _phase_unet(config).to(old.weight.device, old.weight.dtype)
            trunk = {k: v for k, v in self.state_dict().items() if not k.startswith(("out.", "shortcut."))}
            self.phase_net.load_state_dict(trunk, strict=False)
            self.phase_net.train(self.training)
        else:
            self.out = _doubled(old, he_uniform_)
            if self.shortcut is not None:
                self.shortcut = _doubled(self.shortcut, lambda conv: conv.reset_parameters())
        self.config = config

    def freeze_magnitude(self) -> None:
        """Phase 2 with a separate phase U-Net: no gradients into the magnitude U-Net, and its
        BatchNorm stays in inference mode (also after ``train()``), so only the phase is learned."""
        if self.phase_net is None:
            raise ValueError("freeze_magnitude needs a separate phase decoder (phase_decoder='separate')")
        for name, child in self.named_children():
            if name != "phase_net":
                child.requires_grad_(False)
        self.magnitude_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> Level1Decoder:
        super().train(mode)
        if self.magnitude_frozen:
            for name, child in self.named_children():
                if name != "phase_net":
                    child.eval()
        return self

    def _unet(self, latents: Tensor) -> Tensor:
        """The U-Net's output channels before any clip (B, out channels, 64)."""
        skips = [self.stem(latents)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()  # deepest feature g3
        for up in self.up:
            x = up(x) + skips.pop()  # u3 + g2, u2 + g1, u1 + g0
        x = self.out(self.head(x))
        if self.shortcut is not None:
            x = x + self.shortcut(latents)
        return x

    def decode_magnitude(self, latents: Tensor) -> Tensor:
        """The magnitude alone (B, 513, 64), without running a separate phase U-Net."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.magnitude_frozen):
            return torch.clamp(self._unet(latents)[:, : self.config.n_bins], -1.0, 1.0)

    def forward(self, latents: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.phase_net is not None:
            return self.decode_magnitude(latents), phase_from_output(self.phase_net._unet(latents), self.config)
        out = torch.clamp(self._unet(latents), -1.0, 1.0)
        n_bins = self.config.n_bins
        if not self.with_phase:
            return out, None
        return out[:, :n_bins], out[:, n_bins:]


def _linear_shortcut(in_channels: int, out_channels: int) -> nn.Conv1d:
    """The 1x1 conv of ``linear_shortcut``, with PyTorch's default init (uniform ±1/sqrt(fan_in)): He
    init would make it dominate the fresh network's output; this scale is the one that was measured."""
    return nn.Conv1d(in_channels, out_channels, 1)


def _doubled(conv: nn.Conv1d, init) -> nn.Conv1d:
    """``conv`` with twice its output channels: the first half keeps its weights, the second is ``init``-ed."""
    new = nn.Conv1d(conv.in_channels, 2 * conv.out_channels, 1).to(conv.weight.device, conv.weight.dtype)
    init(new)
    with torch.no_grad():
        new.weight[: conv.out_channels].copy_(conv.weight)
        new.bias[: conv.out_channels].copy_(conv.bias)
    return new


def _magnitude_only(config: Level1Config) -> Level1Config:
    """The config of a one-output U-Net (a phase-1 decoder, or the separate phase U-Net)."""
    return dataclasses.replace(config, with_phase=False, phase_decoder="shared", phase_output="angle")


def _phase_unet(config: Level1Config) -> Level1Decoder:
    """The separate phase U-Net: the magnitude U-Net's widths, 513 outputs ("angle") or 1026 (pairs)."""
    pairs = config.phase_output != "angle"
    return Level1Decoder(_magnitude_only(config), out_channels=config.n_bins * (2 if pairs else 1))


def bin_centre_rotation(n_bins: int, frames: int, device: torch.device | None = None) -> Tensor:
    """(n_bins, frames) phase/π in [0, 2) that bin k of the STFT turns through by frame t at its centre
    frequency: 2·k·t·hop / n_fft, taken mod 2 in integers (exact for any t; period 4 frames here)."""
    n_fft = 2 * (n_bins - 1)
    k = torch.arange(n_bins, device=device).view(-1, 1)
    t = torch.arange(frames, device=device).view(1, -1)
    return torch.remainder(2 * HOP * k * t, 2 * n_fft).float() / n_fft


def phase_from_output(raw: Tensor, config: Level1Config) -> Tensor:
    """A phase U-Net's unclipped output (B, 513 or 1026, ..., T) -> phase/π (B, 513, ..., T) in [-1, 1].

    ``"angle"``: clipped as it is; ``"atan2"``: channels 0..512 the real, 513..1025 the imaginary part
    of a pair whose angle is the phase; ``"demodulated"``: that angle plus :func:`bin_centre_rotation`
    (t counted from the window's first frame), wrapped to [-1, 1). Axes between channels and time (the
    fast decoder's (N, C, 1, T) layout) are broadcast over; the result keeps ``raw``'s dtype.
    """
    if config.phase_output == "angle":
        return torch.clamp(raw, -1.0, 1.0)
    real, imaginary = raw.chunk(2, dim=1)
    phase = torch.atan2(imaginary, real) / math.pi
    if config.phase_output == "demodulated":
        n_bins, frames = phase.shape[1], phase.shape[-1]
        rotation = bin_centre_rotation(n_bins, frames, phase.device).to(phase.dtype)
        rotation = rotation.view(n_bins, *([1] * (phase.dim() - 3)), frames)
        phase = torch.remainder(phase + rotation + 1, 2) - 1
    return phase


# ---------------------------------------------------------------------------------------------
# Level 2: `ratio` level-1 latents <-> one level-2 latent
# ---------------------------------------------------------------------------------------------


class Level2Encoder(nn.Module):
    """Enc2: level-1 latents (B, 128, n·ratio) -> (B, 64, n) in (-1, 1).

    The sequence is cut into n non-overlapping chunks of ``ratio`` frames stacked on the batch axis;
    valid (unpadded) convs collapse each chunk to one vector, so output t depends only on input
    frames [t·ratio, (t+1)·ratio).
    """

    def __init__(self, config: Level2Config) -> None:
        super().__init__()
        self.config = config
        blocks, channels = [], config.input_dim
        layers = zip(config.encoder_channels, config.encoder_kernels, config.encoder_strides, strict=True)
        for width, kernel, stride in layers:  # techno: T 8 -> 8, 6, 4, 4, 2, 1
            blocks.append(
                ConvBlock(
                    channels, width, kernel, stride, padding="valid",
                    bn_momentum=config.bn_momentum, bn_eps=config.bn_eps,
                )
            )
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv1d(channels, config.latent_dim, 1)  # (B·n, 64, 1)
        he_uniform_(self)
        # (B·n, 128, ratio) -> (B·n, 64, 1); PyTorch's default init, as Level 1's shortcut
        self.shortcut = nn.Conv1d(config.input_dim, config.latent_dim, config.ratio) if config.linear_shortcut else None

    def forward(self, latents: Tensor) -> Tensor:
        batch = latents.shape[0]
        chunks = split_windows(latents, self.config.ratio)  # (B·n, 128, ratio)
        codes = self.out(self.blocks(chunks))  # (B·n, 64, 1)
        if self.shortcut is not None:
            codes = codes + self.shortcut(chunks)
        return merge_windows(torch.tanh(codes), batch)  # (B, 64, n)


class Level2Decoder(nn.Module):
    """Dec2: level-2 latents (B, 64, 8) -> level-1 latents (B, 128, 64) in (-1, 1) (piano: (B, 32, 4)).

    Conv (stride 1, TF "same": k4 pads 1 left / 2 right) and k4/s2 transposed-conv blocks with noise,
    BN and swish, no skips; a 1x1 conv + tanh at the end.
    """

    def __init__(self, config: Level2Config) -> None:
        super().__init__()
        self.config = config
        blocks, channels = [], config.latent_dim
        layers = zip(config.decoder_channels, config.decoder_kernels, config.decoder_strides, strict=True)
        for width, kernel, stride in layers:  # techno: T 8 -> 8, 16, 32, 32, 64
            blocks.append(
                ConvBlock(
                    channels, width, kernel, stride, transposed=stride > 1, noise=config.noise,
                    bn_momentum=config.bn_momentum, bn_eps=config.bn_eps,
                )
            )
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv1d(channels, config.input_dim, 1)  # (B, 128, 64)
        he_uniform_(self)
        self.shortcut = None
        if config.linear_shortcut:  # (B, 64, 8) -> (B, 128, 64): each vector to its `ratio` frames
            self.shortcut = nn.ConvTranspose1d(config.latent_dim, config.input_dim, config.ratio, stride=config.ratio)

    def forward(self, latents: Tensor) -> Tensor:
        x = self.out(self.blocks(latents))
        if self.shortcut is not None:
            x = x + self.shortcut(latents)
        return torch.tanh(x)


# ---------------------------------------------------------------------------------------------
# Wrappers: windowing for sequences longer than one decoder window
# ---------------------------------------------------------------------------------------------


def _check_frames(frames: int, window: int, what: str) -> None:
    if frames == 0 or frames % window:
        raise ValueError(f"{what}: {frames} frames is not a positive multiple of the {window}-frame window")


class Level1Autoencoder(nn.Module):
    """Enc1 + Dec1 with window handling. Attributes ``encoder`` and ``decoder``."""

    def __init__(self, config: Level1Config) -> None:
        super().__init__()
        self.encoder = Level1Encoder(config)
        self.decoder = Level1Decoder(config)

    @property
    def config(self) -> Level1Config:
        return self.decoder.config  # follows enable_phase()

    def encode(self, features: Tensor) -> Tensor:
        """Normalised log-power (B, 513, K) -> latents (B, 128, K); any K (frame-wise)."""
        return self.encoder(features)

    def encode_wave(self, wave: Tensor) -> Tensor:
        """Waveform (B, L) at 22.05 kHz -> latents (B, 128, floor((L - 1024) / 256) + 1)."""
        return self.encoder(wave_to_features(wave))

    def decode(self, latents: Tensor) -> tuple[Tensor, Tensor | None]:
        """Latents (B, 128, n·64) -> magnitude, phase (B, 513, n·64); windows decoded as one batch.

        Phase is None for a phase-1 decoder.
        """
        batch, window = latents.shape[0], self.config.window_frames
        _check_frames(latents.shape[-1], window, "Level1Autoencoder.decode")
        magnitude, phase = self.decoder(split_windows(latents, window))
        return merge_windows(magnitude, batch), None if phase is None else merge_windows(phase, batch)

    def decode_magnitude(self, latents: Tensor) -> Tensor:
        """:meth:`decode`'s magnitude alone (B, 513, n·64), without running a separate phase U-Net."""
        batch, window = latents.shape[0], self.config.window_frames
        _check_frames(latents.shape[-1], window, "Level1Autoencoder.decode_magnitude")
        return merge_windows(self.decoder.decode_magnitude(split_windows(latents, window)), batch)

    def decode_to_wave(self, latents: Tensor) -> Tensor:
        """Latents (B, 128, K = n·64) -> waveform (B, 256·K + 768), one iSTFT over the whole sequence."""
        magnitude, phase = self.decode(latents)
        if phase is None:
            raise ValueError("the level-1 decoder has no phase output (phase-1 mode); call enable_phase()")
        return features_to_wave(magnitude, phase)


class Level2Autoencoder(nn.Module):
    """Enc2 + Dec2 with window handling. Attributes ``encoder`` and ``decoder``."""

    def __init__(self, config: Level2Config) -> None:
        super().__init__()
        self.config = config
        self.encoder = Level2Encoder(config)
        self.decoder = Level2Decoder(config)

    def encode(self, latents: Tensor) -> Tensor:
        """Level-1 latents (B, 128, n·ratio) -> level-2 latents (B, 64, n)."""
        _check_frames(latents.shape[-1], self.config.ratio, "Level2Autoencoder.encode")
        return self.encoder(latents)

    def decode(self, latents: Tensor) -> Tensor:
        """Level-2 latents (B, 64, m·8) -> level-1 latents (B, 128, m·64); windows decoded as one batch."""
        batch, window = latents.shape[0], self.config.decoder_input_frames
        _check_frames(latents.shape[-1], window, "Level2Autoencoder.decode")
        return merge_windows(self.decoder(split_windows(latents, window)), batch)
