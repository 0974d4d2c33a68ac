"""Fast CPU inference for Musika's decoders: BatchNorm folded, channels-last oneDNN convolutions.

:class:`FastDecoder` is an inference-only rewrite of Dec2 -> Dec1 with the same arithmetic as the
eval-mode models (spec musika.md §3.2, §4.2). Why it is faster on CPU:

* every activation is a 4-D (windows, channels, 1, frames) tensor in ``channels_last`` memory
  format, i.e. physically time-major (windows, frames, channels). oneDNN then runs every conv and
  transposed conv as a blocked GEMM over frames (1.3-1.9x faster than the channels-first convs of
  the training modules, measured on a Zen4 EPYC, fp32 and bf16);
* BatchNorm is folded into the conv weights and bias, noise and activations are applied in place;
* Dec2 emits exactly one Dec1 window per Dec2 window, so the two decoders chain without any window
  split/merge, and Dec1's output stays time-major: (windows, 64 frames, 1026) rows go straight to
  :func:`orchestrion.audio.spectral.frames_to_wave` without transposes.

Precisions (``precision=``):

``"fp32"``         float32 everywhere (the default); the waveform differs from the un-optimised models' by
                   at most :data:`FP32_TOLERANCE` (1e-5) of its peak: float rounding (measured 1-2e-6 on a
                   trained model decoding music).
``"bf16"``         bfloat16 weights and activations (oneDNN AVX512-BF16 kernels, fp32 accumulation),
                   float32 iSTFT. About 2x faster than fp32; waveform SNR ~40 dB against fp32.
``"bf16-mixed"``   as ``"bf16"`` but Dec1's last 1x1 conv (its output is the spectrogram) runs in
                   float32; see ``benchmarks/musika_codec_speed.py`` for its speed and SNR.

Noise (AddNoise) is drawn exactly like the training modules (one (windows, 1, frames) float32
normal sample per noisy layer, in layer order, from the given generator), so with the same seed the
fp32 path reproduces the un-optimised models' output. Wherever a ``noise`` flag is taken, a
:data:`~orchestrion.musika.layers.NoiseSampler` may be passed instead: it then supplies each layer's
(windows, 1, frames) draw, in the same layer order (how generation makes noise depend on position).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.errors import ConfigError
from orchestrion.musika.autoencoder import Level1Autoencoder, Level2Autoencoder, phase_from_output
from orchestrion.musika.layers import ConvBlock, NoiseSampler

PRECISIONS = ("fp32", "bf16", "bf16-mixed")
# |fast fp32 - plain| <= FP32_TOLERANCE * max|plain| on the waveform before PCM quantisation, noise on or off;
# also the bound for BatchNorm folding alone (codec.fuse_for_inference). Tested on a trained model and music.
FP32_TOLERANCE = 1e-5
CHANNELS_LAST = torch.channels_last
# activation -> oneDNN post-op (name, scalars) of torch.ops.mkldnn._convolution_pointwise
_POST_OPS = {"silu": ("swish", []), "tanh": ("tanh", []), "clip": ("hardtanh", [-1.0, 1.0]), "none": ("none", [])}


def native_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (AVX-512 BW/VL/DQ, AVX-NE-CONVERT or AMX).

    The ``"bf16"`` precisions need them: on a CPU without (an AVX2-only one, say) oneDNN refuses the
    bf16 convolutions.
    """
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class _FastConv(nn.Module):
    """One folded conv block on (N, C, 1, T) channels-last tensors: conv -> noise -> activation.

    ``activation`` is ``"silu"`` (conv blocks), ``"tanh"`` (Dec2's output), ``"clip"`` (Dec1's output,
    clipped to [-1, 1]) or ``"none"`` (Dec1's output before its linear shortcut is added).
    """

    def __init__(
        self,
        conv: nn.Conv1d | nn.ConvTranspose1d,
        pad: tuple[int, int],
        noise_scale: Tensor | None,
        activation: str,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        self.stride = conv.stride[0]
        self.padding = conv.padding[0]
        self.pad = pad
        self.activation = activation
        weight = conv.weight.detach()[:, :, None, :]  # (Cout, Cin, 1, k) or (Cin, Cout, 1, k) transposed
        self.register_buffer("weight", weight.to(dtype).contiguous(memory_format=CHANNELS_LAST))
        self.register_buffer("bias", conv.bias.detach().to(dtype).clone())
        scale = None if noise_scale is None else noise_scale.detach().reshape(1, -1, 1, 1).to(dtype).clone()
        self.register_buffer("noise_scale", scale)
        self._packed: tuple[torch.dtype, Tensor] | None = None

    def _packed_weight(self, x: Tensor) -> Tensor:
        """The weight reordered once into oneDNN's blocked layout (saves a reorder on every call)."""
        if self._packed is None or self._packed[0] != x.dtype:
            if self.transposed:
                packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                    self.weight, [0, self.padding], [0, 0], [1, self.stride], [1, 1], 1, list(x.shape)
                )
            else:
                packed = torch.ops.mkldnn._reorder_convolution_weight(
                    self.weight, [0, 0], [1, self.stride], [1, 1], 1, list(x.shape)
                )
            self._packed = (x.dtype, packed)
        return self._packed[1]

    def forward(self, x: Tensor, noise: bool | NoiseSampler, generator: torch.Generator | None) -> Tensor:
        if self.pad != (0, 0):
            x = F.pad(x, self.pad)  # TF "same" padding; keeps the channels-last layout
        add_noise = noise is not False and self.noise_scale is not None
        # without noise the activation runs as a oneDNN post-op inside the conv (one pass less)
        attr, scalars = ("none", []) if add_noise else _POST_OPS[self.activation]
        weight = self._packed_weight(x)
        if self.transposed:
            x = torch.ops.mkldnn._convolution_transpose_pointwise(
                x, weight, self.bias, [0, self.padding], [0, 0], [1, self.stride], [1, 1], 1, attr, scalars, ""
            )
        else:
            x = torch.ops.mkldnn._convolution_pointwise(
                x, weight, self.bias, [0, 0], [1, self.stride], [1, 1], 1, attr, scalars, ""
            )
        if not add_noise:
            return x
        # the same draw as AddNoise: (N, 1, T) float32 normals, one per frame shared by all channels
        if callable(noise):
            sample = noise(x.shape[0], x.shape[3]).to(x.device)
        else:
            sample = torch.randn(x.shape[0], 1, x.shape[3], generator=generator, device=x.device)
        x.addcmul_(self.noise_scale, sample[:, :, None, :].to(x.dtype))
        return F.silu(x, inplace=True)  # only conv blocks (silu) have noise


def _from_block(block: ConvBlock, dtype: torch.dtype) -> _FastConv:
    """A :class:`_FastConv` from a ConvBlock whose BatchNorm has been folded (see ``fold_batchnorm``)."""
    if not isinstance(block.bn, nn.Identity):
        raise ValueError("fold the BatchNorm first (ConvBlock.fold_batchnorm)")
    noise_scale = None
    if block.noise is not None:
        noise_scale = block.noise.scale.expand(block.conv.out_channels, 1)  # () before folding -> per channel
    return _FastConv(block.conv, block.pad, noise_scale, "silu", dtype)


def _folded_blocks(module: nn.Module) -> nn.Module:
    """An eval copy of ``module`` with every ConvBlock's BatchNorm folded into its conv."""
    folded = copy.deepcopy(module).eval()
    for layer in folded.modules():
        if isinstance(layer, ConvBlock):
            layer.fold_batchnorm()
    return folded


class _FastUNet(nn.Module):
    """One Dec1 U-Net (folded) on (N, 128, 1, 64) channels-last windows -> (N, out channels, 1, 64)."""

    def __init__(self, dec1: nn.Module, dtype: torch.dtype, out_dtype: torch.dtype, clip: bool = True) -> None:
        super().__init__()
        self.clip = clip  # False: the raw (real, imaginary) pairs of an "atan2"/"demodulated" phase U-Net
        self.stem = _from_block(dec1.stem, dtype)
        self.down = nn.ModuleList(_from_block(block, dtype) for block in dec1.down)
        self.up = nn.ModuleList(_from_block(block, dtype) for block in dec1.up)
        self.head = _from_block(dec1.head, dtype)
        self.shortcut = None
        if dec1.shortcut is not None:  # Level1Config.linear_shortcut: clip after the sum, not in the conv
            self.shortcut = _FastConv(dec1.shortcut, (0, 0), None, "none", out_dtype)
        self.out = _FastConv(dec1.out, (0, 0), None, "clip" if clip and self.shortcut is None else "none", out_dtype)

    def forward(self, x: Tensor, noise: bool | NoiseSampler, generator: torch.Generator | None) -> Tensor:
        latents = x
        skips = [self.stem(x, noise, generator)]
        for layer in self.down:
            skips.append(layer(skips[-1], noise, generator))
        x = skips.pop()
        for layer in self.up:
            x = layer(x, noise, generator).add_(skips.pop())  # u3 + g2, u2 + g1, u1 + g0
        x = self.head(x, noise, generator)
        out = self.out(x.to(self.out.weight.dtype), False, None)
        if self.shortcut is None:
            return out
        out = out.add_(self.shortcut(latents.to(self.out.weight.dtype), False, None))
        return out.clamp_(-1.0, 1.0) if self.clip else out


class FastDecoder(nn.Module):
    """Inference-only Dec2 -> Dec1 (or Dec1 alone) in channels-last layout.

    Built from eval-mode (optionally already fused) models; it copies their weights, so later changes
    to the models are not seen (see :func:`freeze`). Use :meth:`decode` on whole blocks of windows; the
    codec's ``decode_latents(..., fast=True)`` / ``iter_decode(..., fast=True)`` build one per call, or
    use the one given as ``decoder=``.
    """

    def __init__(
        self,
        level1: Level1Autoencoder,
        level2: Level2Autoencoder | None = None,
        precision: str = "fp32",
        magnitude_only: bool = False,
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if next(level1.parameters()).device.type != "cpu":
            raise ValueError("fast decoding uses oneDNN CPU kernels; move the models to the CPU or use fast=False")
        if precision != "fp32" and not native_bf16():
            from orchestrion.system import cpu_description

            raise ConfigError(
                f"precision {precision!r} needs a CPU with bfloat16 instructions (AVX-512 BW/VL/DQ, AVX-NE-CONVERT "
                f"or AMX) and this one ({cpu_description()[0]}) has none: use fp32, or auto (bf16 where it exists)"
            )
        self.precision = precision
        self.dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        self.window_frames = level1.config.window_frames
        self.n_bins = level1.config.n_bins
        self.level2_window = None if level2 is None else level2.config.decoder_input_frames
        dec1 = _folded_blocks(level1.decoder)
        out_dtype = torch.float32 if precision in ("fp32", "bf16-mixed") else torch.bfloat16
        self.unet = _FastUNet(dec1, self.dtype, out_dtype)
        # a separate phase U-Net runs after the magnitude one, as in Level1Decoder (same noise order)
        self.phase_unet = None
        self.level1_config = level1.config  # its phase_output turns the phase U-Net's channels into phase/π
        if dec1.phase_net is not None and not magnitude_only:
            pairs = level1.config.phase_output != "angle"
            self.phase_unet = _FastUNet(dec1.phase_net, self.dtype, out_dtype, clip=not pairs)
        # whether decode() returns phase channels after the magnitude (a shared output conv always makes them)
        self.with_phase = level1.config.with_phase and (dec1.phase_net is None or self.phase_unet is not None)
        self.level2, self.level2_shortcut = None, None
        if level2 is not None:
            dec2 = _folded_blocks(level2.decoder)
            blocks = [_from_block(block, self.dtype) for block in dec2.blocks]
            blocks.append(_FastConv(dec2.out, (0, 0), None, "tanh" if dec2.shortcut is None else "none", self.dtype))
            self.level2 = nn.ModuleList(blocks)
            if dec2.shortcut is not None:  # Level2Config.linear_shortcut: tanh after the sum, not in the output conv
                self.level2_shortcut = _FastConv(dec2.shortcut, (0, 0), None, "none", self.dtype)

    def to_windows(self, latents: Tensor) -> Tensor:
        """(C, dim, n·w) latents -> (C·n, dim, 1, w) channels-last windows (w: the first decoder's window)."""
        channels, dim, frames = latents.shape
        window = self.level2_window or self.window_frames
        if frames == 0 or frames % window:
            raise ValueError(f"{frames} latent frames is not a positive multiple of the {window}-frame window")
        x = latents.reshape(channels, dim, frames // window, window).permute(0, 2, 1, 3)  # batch-major windows
        return x.reshape(-1, dim, 1, window).to(self.dtype).contiguous(memory_format=CHANNELS_LAST)

    def run_level2(
        self, x: Tensor, noise: bool | NoiseSampler = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Dec2 on (N, dim, 1, 8) windows -> (N, 128, 1, 64): exactly one Dec1 window per Dec2 window."""
        if self.level2 is None:
            raise ValueError("this FastDecoder was built without a level-2 model")
        latents = x
        for layer in self.level2:
            x = layer(x, noise, generator)
        if self.level2_shortcut is None:
            return x
        return x.add_(self.level2_shortcut(latents, False, None)).tanh_()

    def run_level1(
        self, x: Tensor, noise: bool | NoiseSampler = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Dec1 on (N, 128, 1, 64) windows -> (N, 64, 1026) frame-major output clipped to [-1, 1]
        ((N, 64, 513) without :attr:`with_phase`)."""
        out = self.unet(x, noise, generator)  # (N, 1026, 1, 64) channels-last (513 with a separate phase)
        if self.phase_unet is not None:
            # (N, 513 or 1026, 1, 64) -> (N, 513, 1, 64) phase/π, as Level1Decoder
            phase = phase_from_output(self.phase_unet(x, noise, generator), self.level1_config)
            out = torch.cat([out, phase], dim=1)
        # channels-last: a view, no copy (torch.cat keeps the memory format of its inputs)
        return out.permute(0, 2, 3, 1).reshape(out.shape[0], -1, out.shape[1])

    @torch.inference_mode()
    def decode(
        self, latents: Tensor, noise: bool | NoiseSampler = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Latents of C channels -> decoder output frames in time-major layout.

        Args:
            latents: (C, dim, F) level-2 latents (F a multiple of the Dec2 window) or, for a decoder
                built without level 2, (C, 128, F) level-1 latents (F a multiple of 64).
            noise: sample the decoders' noise (as the un-optimised models do by default), or a
                sampler supplying it (rows in the order of :meth:`to_windows`).
            generator: random generator for the noise (None: the global one).
        Returns:
            (C, K, 1026) Dec1 output clipped to [-1, 1], K level-1 frames: ``[..., :513]`` is the
            normalised log-power, ``[..., 513:]`` phase/π (absent without :attr:`with_phase`: a
            phase-1 decoder, or ``magnitude_only``). A view of a channels-last buffer; float32
            except for ``precision="bf16"`` (bfloat16).
        """
        x = self.to_windows(latents)
        if self.level2 is not None:
            x = self.run_level2(x, noise, generator)
        out = self.run_level1(x, noise, generator)  # (C·n, 64, 1026), windows batch-major
        return out.reshape(latents.shape[0], -1, out.shape[-1])


def freeze(
    level1: Level1Autoencoder,
    level2: Level2Autoencoder | None = None,
    precision: str = "fp32",
    magnitude_only: bool = False,
) -> FastDecoder:
    """A :class:`FastDecoder` holding a snapshot of the models' weights as they are now.

    The caller owns it: building one copies and folds ~15 M weights (tens of milliseconds), so a
    stream of decodes keeps one and passes it on (``iter_decode(..., decoder=...)``). It is
    immutable with respect to the models: after any change to their weights (a training or EMA
    step, ``load_state_dict``, an edit through ``.data``) freeze them again; the old snapshot keeps
    decoding with the old weights. ``magnitude_only`` leaves out a separate phase U-Net (for a phase
    that comes from elsewhere, e.g. Griffin-Lim).
    """
    return FastDecoder(level1, level2, precision, magnitude_only)

