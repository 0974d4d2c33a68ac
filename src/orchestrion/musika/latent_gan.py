"""Musika's latent GAN (spec musika.md §6): a 1-D FastGAN generator and critic over level-2 latents.

The generator maps a *coordinate sequence* (interpolated anchors + one style vector, spec §7, plus
optional conditioning curves) to stereo level-2 latents; the critic judges such sequences and
rebuilds real ones from its last feature map (FastGAN's self-supervised reconstruction head).

    coords (B, coord+style[+cond], 2·seq_len) --G--> latents (B, 2·latent_dim, 2·seq_len) in (−1, 1)
    latents (B, 2·latent_dim, 2·seq_len) [+ cond] --D--> logit (B, 1), feature (B, C_last, T_last)

The generator works on halves: a call on ``latlen = 2·seq_len`` coordinates generates each half of
``seq_len`` independently (stacked on the batch axis), so at inference any number of segments is one
batched pass. Widths and lengths come from :class:`LatentGANConfig`; the ``techno`` preset is the
reference table of spec §6.1/§6.2, shapes in the comments are that preset's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from orchestrion.config import register_config
from orchestrion.errors import ConfigError
from orchestrion.musika.config import AutoencoderTrainingConfig
from orchestrion.musika.layers import AddNoise, he_uniform_, same_padding

CONDITIONS = ("note_density", "tempo")  # conditioning curves the data pipeline provides (spec §8)
# Generator block table (spec §6.1): blocks a..i; the tconv slots are a, c, e, g, i (the last
# log2(seq_len / 4) of them up-sample, earlier ones become stride-1 convs: piano's block a).
GENERATOR_BLOCKS = 9
_UPSAMPLING_SLOTS = (0, 2, 4, 6, 8)
_BLOCK_KERNELS = (4, 1, 4, 3, 4, 3, 4, 3, 4)
_SLE_SOURCES = {4: 0, 5: 1, 6: 2, 7: 3}  # e <- a, f <- b, g <- c, h <- d
STEM_INPUT_FRAMES = 2  # the stem reads the length-2 level of the coordinate pyramid
STEM_FRAMES = 4


@register_config("musika.latent_gan")
@dataclass(frozen=True)
class LatentGANConfig:
    """Sizes and training hyperparameters of a latent GAN (spec §6); presets via :meth:`preset_config`.

    ``latlen = 2·seq_len`` frames is one generator call and one critic input. ``latent_dim`` and
    ``audio_channels`` must match the level-2 autoencoder whose latents the GAN learns.
    """

    preset: str = "techno"  # name the sizes came from (informative)
    seq_len: int = 128  # frames per generator half (≈ 11.9 s at 10.77 frames/s)
    latent_dim: int = 64  # level-2 latent dims per audio channel
    audio_channels: int = 2  # stereo: [left dims | right dims] on the channel axis
    coord_dim: int = 64  # anchor (coordinate) dims
    style_dim: int = 64  # style vector dims, constant over a whole piece
    conditions: tuple[str, ...] = ()  # subset of CONDITIONS, one extra input channel each
    # Generator: stem width at 4 frames, then blocks a..i of the table in spec §6.1.
    stem_channels: int = 896
    generator_channels: tuple[int, ...] = (768, 768, 640, 640, 512, 512, 384, 384, 256)
    upsampling: Literal["transposed", "nearest"] = "transposed"  # reference, or FastGAN's repeat + conv
    # Critic: frozen cross-channel mixing width; the first strided conv then one residual down
    # block per further width; the reconstruction decoder's transposed convs (one per halving).
    ccm_channels: int = 256
    critic_channels: tuple[int, ...] = (384, 512, 640, 768, 896, 1024)
    reconstruction_channels: tuple[int, ...] = (512, 448, 384, 320, 256, 192)
    negative_slope: float = 0.2  # LeakyReLU of the critic
    # Training (spec §6.3)
    batch_size: int = 32
    learning_rate: float = 1e-4  # Adam, both networks
    beta1: float = 0.5  # paper; the 22 kHz reference uses 0.9
    beta2: float = 0.999
    gradient_penalty: Literal["r1", "reference"] = "r1"  # true R1, or the reference's (‖∇‖ − 1)²
    gradient_penalty_weight: float = 10.0
    reconstruction_weight: float = 10.0
    ema_decay: float = 0.999  # generator EMA, used for sampling

    def __post_init__(self) -> None:
        if self.seq_len < 8 or self.seq_len > 128 or self.seq_len & (self.seq_len - 1):
            raise ConfigError(f"LatentGANConfig.seq_len must be a power of two in 8..128, got {self.seq_len}")
        unknown = sorted(set(self.conditions) - set(CONDITIONS))
        if unknown or len(set(self.conditions)) != len(self.conditions):
            raise ConfigError(
                f"LatentGANConfig.conditions must be distinct names from {list(CONDITIONS)}, "
                f"got {list(self.conditions)}"
            )
        if len(self.generator_channels) != GENERATOR_BLOCKS:
            raise ConfigError(
                f"LatentGANConfig.generator_channels needs {GENERATOR_BLOCKS} widths (blocks a..i), "
                f"got {len(self.generator_channels)}"
            )
        halvings = len(self.critic_channels)
        if halvings < 2 or self.latlen % 2**halvings:
            raise ConfigError(
                f"LatentGANConfig: the critic halves time {halvings} times, latlen {self.latlen} must be a multiple "
                f"of {2**halvings} (and at least 2 critic widths)"
            )
        if len(self.reconstruction_channels) != halvings:
            raise ConfigError(
                "LatentGANConfig.reconstruction_channels needs one width per critic halving "
                f"({halvings}), got {len(self.reconstruction_channels)}"
            )
        for name in ("latent_dim", "audio_channels", "coord_dim", "style_dim", "stem_channels", "ccm_channels",
                     "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LatentGANConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.gradient_penalty not in ("r1", "reference"):
            raise ConfigError(
                f"LatentGANConfig.gradient_penalty must be 'r1' or 'reference', got {self.gradient_penalty!r}"
            )
        if self.upsampling not in ("transposed", "nearest"):
            raise ConfigError(
                f"LatentGANConfig.upsampling must be 'transposed' or 'nearest', got {self.upsampling!r}"
            )
        if self.gradient_penalty_weight < 0 or self.reconstruction_weight < 0:
            raise ConfigError("LatentGANConfig: gradient_penalty_weight and reconstruction_weight must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"LatentGANConfig.ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def latlen(self) -> int:
        """Frames of one generator call and one critic input: two halves."""
        return 2 * self.seq_len

    @property
    def latent_channels(self) -> int:
        """Channels of the generated latents: ``audio_channels · latent_dim``."""
        return self.audio_channels * self.latent_dim

    @property
    def input_channels(self) -> int:
        """Generator input channels: coordinates + style + one per condition."""
        return self.coord_dim + self.style_dim + len(self.conditions)

    @property
    def upsamplings(self) -> int:
        """Stride-2 transposed convs taking the stem's 4 frames to ``seq_len``."""
        return int(math.log2(self.seq_len // STEM_FRAMES))

    @classmethod
    def preset_config(cls, name: str, **overrides: Any) -> LatentGANConfig:
        """Named sizes: ``techno`` (reference), ``piano`` ([PROPOSED] §6.1), ``small`` (CPU), ``debug`` (tests).

        Parameters with 64 latent dims: techno 14.1 M (generator) + 20.6 M (critic); ``small`` keeps
        the block structure at about a quarter of the widths, 1.24 M + 1.31 M, and ``seq_len`` 64
        (≈ 11.9 s per critic window at 10.77 frames/s): a model trained for hours on a few CPU cores,
        with FastGAN's learning rate 2e-4. ``debug`` is tiny (seq_len 16, widths ≤ 32, lr 1e-3).

        ``small`` and ``debug`` up-sample by repetition + conv and weight R1 by 0.001 instead of the
        paper's transposed convs and weight 10. Measured on a debug GAN (2,000 steps on latents of
        violin renders, data: mean |Δ| between frames 0.09–0.19): at weight 10 the critic stops
        separating real from fake (hinge → 1, the same logit for both) and the output's mean |Δ| stays
        at 0.49; transposed convs leave an alternating-frame pattern (the bundled run: 17x the mean
        power at the highest frequency); with both changes it reaches 0.16.
        """
        if name not in PRESETS:
            raise ConfigError(f"unknown latent-GAN preset {name!r}; choose from {sorted(PRESETS)}")
        return cls(**{"preset": name, **PRESETS[name], **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    "techno": {},
    "piano": {"seq_len": 64, "latent_dim": 32},
    "small": {
        "seq_len": 64,
        "coord_dim": 32,
        "style_dim": 32,
        "stem_channels": 256,
        "generator_channels": (224, 224, 192, 192, 160, 160, 128, 128, 96),
        "ccm_channels": 128,
        "critic_channels": (96, 128, 160, 192, 224, 256),
        "reconstruction_channels": (128, 112, 96, 80, 64, 48),
        "batch_size": 16,
        "learning_rate": 2e-4,
        "upsampling": "nearest",
        "gradient_penalty_weight": 0.001,
    },
    "debug": {
        "seq_len": 16,
        "latent_dim": 8,
        "coord_dim": 16,
        "style_dim": 16,
        "stem_channels": 32,
        "generator_channels": (32, 32, 32, 32, 24, 24, 24, 24, 16),
        "ccm_channels": 32,
        "critic_channels": (32, 32, 48, 48),
        "reconstruction_channels": (32, 24, 24, 16),
        "batch_size": 8,
        "learning_rate": 1e-3,
        "upsampling": "nearest",
        "gradient_penalty_weight": 0.001,
    },
}


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------


def coordinate_pyramid(coords: Tensor) -> dict[int, Tensor]:
    """Average-pooled copies of ``coords`` (B, C, T) at T, T/2, ..., 2 frames, keyed by length."""
    levels = {coords.shape[-1]: coords}
    while coords.shape[-1] > STEM_INPUT_FRAMES:
        coords = F.avg_pool1d(coords, 2)
        levels[coords.shape[-1]] = coords
    return levels


class ScaleAdaIN(nn.Module):
    """Scale-only spatially adaptive instance norm: ``x ← γ(emb) ⊙ x / (std_t(x) + 1e-7)``.

    ``γ`` is a 1×1 conv of the pooled coordinates at x's resolution (one scale per frame and
    channel); no centring and no shift, as the reference.
    """

    def __init__(self, embedding_channels: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Conv1d(embedding_channels, channels, 1)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        # x (B, C, T), embedding (B, E, T)
        std = x.std(dim=-1, keepdim=True, unbiased=False)
        return self.gamma(embedding) * x / (std + 1e-7)


class SkipLayerExcitation(nn.Module):
    """FastGAN's SLE gate from an earlier feature y: mean_t → 1×1 → swish → 1×1 → sigmoid, (B, C_out, 1)."""

    def __init__(self, source_channels: int, channels: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv1d(source_channels, channels, 1)
        self.excite = nn.Conv1d(channels, channels, 1)

    def forward(self, source: Tensor) -> Tensor:
        pooled = source.mean(dim=-1, keepdim=True)  # (B, C_y, 1)
        return torch.sigmoid(self.excite(F.silu(self.squeeze(pooled))))


class GeneratorBlock(nn.Module):
    """conv (bias, "same") → AddNoise → SA-AdaIN(emb) → swish.

    ``upsample`` doubles the frames: ``"transposed"`` with a transposed conv k4/s2 (the reference),
    ``"nearest"`` with nearest-neighbour repetition then a k3 conv (FastGAN's up-block, free of the
    transposed conv's alternating-frame artifact).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, upsample: str | None, embedding_channels: int
    ) -> None:
        super().__init__()
        self.pad = (0, 0)
        self.scale = 2 if upsample else 1  # output frames per input frame
        self.repeat = upsample == "nearest"
        if upsample == "transposed":
            self.conv: nn.Module = nn.ConvTranspose1d(in_channels, out_channels, 4, stride=2, padding=1)  # T → 2T
        else:
            kernel = 3 if kernel == 4 else kernel  # a table tconv slot as a plain conv (nearest, or piano's a)
            self.pad = same_padding(kernel, 1)
            self.conv = nn.Conv1d(in_channels, out_channels, kernel)
        self.noise = AddNoise()
        self.norm = ScaleAdaIN(embedding_channels, out_channels)

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        if self.repeat:
            x = x.repeat_interleave(2, dim=-1)  # (B, C, T) → (B, C, 2T)
        x = self.conv(F.pad(x, self.pad) if self.pad != (0, 0) else x)
        return F.silu(self.norm(self.noise(x), embedding))


class LatentGenerator(nn.Module):
    """Coordinates (B, coord+style+cond, 2·seq_len) → latents (B, audio_channels·latent_dim, 2·seq_len) in (−1, 1).

    Each ``seq_len`` half is generated on its own (halves are stacked on the batch axis).
    """

    def __init__(self, config: LatentGANConfig) -> None:
        super().__init__()
        self.config = config
        c_in = config.input_channels
        self.stem = nn.Linear(STEM_INPUT_FRAMES * c_in, STEM_FRAMES * config.stem_channels)
        self.stem_noise = AddNoise()
        self.stem_norm = ScaleAdaIN(c_in, config.stem_channels)
        upsampling = set(_UPSAMPLING_SLOTS[len(_UPSAMPLING_SLOTS) - config.upsamplings :])
        blocks, channels = [], config.stem_channels
        for index, (width, kernel) in enumerate(zip(config.generator_channels, _BLOCK_KERNELS, strict=True)):
            up = config.upsampling if index in upsampling else None
            blocks.append(GeneratorBlock(channels, width, kernel, up, c_in))
            channels = width
        self.blocks = nn.ModuleList(blocks)
        self.gates = nn.ModuleDict(
            {
                str(target): SkipLayerExcitation(config.generator_channels[source], config.generator_channels[target])
                for target, source in _SLE_SOURCES.items()
            }
        )
        self.out = nn.Conv1d(channels, config.latent_channels, 1)
        he_uniform_(self)

    def generate_half(self, coords: Tensor) -> Tensor:
        """One ``seq_len`` window: (N, C_in, seq_len) → (N, latent_channels, seq_len)."""
        pyramid = coordinate_pyramid(coords)  # lengths 128, 64, ..., 2 (techno)
        x = self.stem(pyramid[STEM_INPUT_FRAMES].flatten(1))  # (N, 4·896)
        x = x.view(x.shape[0], self.config.stem_channels, STEM_FRAMES)  # (N, 896, 4)
        x = F.silu(self.stem_norm(self.stem_noise(x), pyramid[STEM_FRAMES]))
        features: list[Tensor] = []
        for index, block in enumerate(self.blocks):
            # techno: a (768, 8) b (768, 8) c (640, 16) d (640, 16) e (512, 32) ... i (256, 128)
            x = block(x, pyramid[x.shape[-1] * block.scale])
            if str(index) in self.gates:
                x = x * self.gates[str(index)](features[_SLE_SOURCES[index]])
            features.append(x)
        return torch.tanh(self.out(x))  # (N, 128, 128)

    def forward(self, coords: Tensor) -> Tensor:
        batch, channels, frames = coords.shape
        if channels != self.config.input_channels or frames != self.config.latlen:
            raise ValueError(
                f"expected coordinates (B, {self.config.input_channels}, {self.config.latlen}), "
                f"got {tuple(coords.shape)}"
            )
        halves = torch.cat(coords.split(self.config.seq_len, dim=-1), dim=0)  # (2B, C_in, seq_len)
        first, second = self.generate_half(halves).split(batch, dim=0)
        return torch.cat([first, second], dim=-1)  # (B, latent_channels, latlen)


# ---------------------------------------------------------------------------------------------
# Critic
# ---------------------------------------------------------------------------------------------


def _same_conv(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """Apply ``conv`` with TF "same" padding (output length = T / stride)."""
    pad = same_padding(conv.kernel_size[0], conv.stride[0])
    return conv(F.pad(x, pad) if pad != (0, 0) else x)


class ResidualDownBlock(nn.Module):
    """Two convs (k₂ stride 1, then k3 stride 2) with LReLU·√0.5, plus an avg-pool(+1×1) shortcut: T → T/2."""

    def __init__(self, in_channels: int, out_channels: int, first_kernel: int, negative_slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, in_channels, first_kernel)
        self.conv2 = nn.Conv1d(in_channels, out_channels, 3, stride=2)
        self.shortcut = nn.Conv1d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else None
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(_same_conv(x, self.conv1), self.negative_slope) * math.sqrt(0.5)
        y = F.leaky_relu(_same_conv(y, self.conv2), self.negative_slope) * math.sqrt(0.5)
        shortcut = F.avg_pool1d(x, 2)
        if self.shortcut is not None:
            shortcut = self.shortcut(shortcut)
        return y + shortcut


class CriticOutput(NamedTuple):
    logit: Tensor  # (B, 1)
    feature: Tensor  # (B, C_last, T_last): (B, 1024, 4) techno
    rebuilt: Tensor | None  # (R, latent_channels, latlen) for the first R = ``rebuild`` samples, else None


class LatentCritic(nn.Module):
    """Latents (B, latent_channels, latlen) [+ conditions (B, n_cond, latlen)] → logit, feature (+ rebuilt).

    Cross-channel mixing is a fixed random projection (a buffer: saved, never trained). The
    reconstruction head maps the feature of a real input back to its latents; ``forward(...,
    rebuild=R)`` applies it to the first R samples in the same call (one forward per backward
    keeps DDP simple).
    """

    def __init__(self, config: LatentGANConfig) -> None:
        super().__init__()
        self.config = config
        slope = config.negative_slope
        mixing = torch.empty(config.ccm_channels, config.latent_channels, 1)
        nn.init.kaiming_uniform_(mixing, a=0.0, mode="fan_in", nonlinearity="relu")
        self.register_buffer("cross_channel_mixing", mixing)
        widths = config.critic_channels
        self.first = nn.Conv1d(config.ccm_channels + len(config.conditions), widths[0], 3, stride=2)
        self.down = nn.ModuleList(
            ResidualDownBlock(c_in, c_out, 1 if last else 3, slope)
            for c_in, c_out, last in zip(
                widths[:-1], widths[1:], [i == len(widths) - 2 for i in range(len(widths) - 1)], strict=True
            )
        )
        self.feature_frames = config.latlen // 2 ** len(widths)
        self.logit = nn.Linear(widths[-1] * self.feature_frames, 1)
        decoder: list[nn.Module] = []
        channels = widths[-1]
        for width in config.reconstruction_channels:
            decoder += [nn.ConvTranspose1d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(slope)]
            channels = width
        decoder += [nn.Conv1d(channels, config.latent_channels, 1), nn.Tanh()]
        self.reconstruction = nn.Sequential(*decoder)
        he_uniform_(self)

    def forward(self, latents: Tensor, conditions: Tensor | None = None, rebuild: int = 0) -> CriticOutput:
        x = F.conv1d(latents, self.cross_channel_mixing.to(latents.dtype))  # (B, 256, 256)
        if self.config.conditions:
            if conditions is None or conditions.shape[1] != len(self.config.conditions):
                raise ValueError(f"this critic is conditioned on {list(self.config.conditions)}: pass their curves")
            x = torch.cat([x, conditions.to(x.dtype)], dim=1)  # (B, 256 + n_cond, 256)
        x = F.leaky_relu(_same_conv(x, self.first), self.config.negative_slope)  # (B, 384, 128)
        for block in self.down:
            x = block(x)  # (B, 512, 64) ... (B, 1024, 4)
        rebuilt = self.reconstruct(x[:rebuild]) if rebuild else None
        return CriticOutput(self.logit(x.flatten(1)), x, rebuilt)

    def reconstruct(self, feature: Tensor) -> Tensor:
        """Feature (B, 1024, 4) → rebuilt latents (B, 128, 256) in (−1, 1)."""
        return self.reconstruction(feature)


# ---------------------------------------------------------------------------------------------
# Losses (spec §6.3)
# ---------------------------------------------------------------------------------------------


def finite_logits(logits: Tensor) -> Tensor:
    """NaN logits replaced by 0 (as the reference), in float32."""
    logits = logits.float()
    return torch.where(torch.isnan(logits), torch.zeros_like(logits), logits)


def hinge_critic_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``½[mean max(0, 1 − D(real)) + mean max(0, 1 + D(fake))]``: 1 when D says 0 everywhere."""
    real, fake = finite_logits(real_logits), finite_logits(fake_logits)
    return 0.5 * (torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean())


def generator_loss(fake_logits: Tensor) -> Tensor:
    """``−mean D(fake)``, the generator's only term."""
    return -finite_logits(fake_logits).mean()


def gradient_penalty(real_logits: Tensor, real_inputs: Tensor, form: str = "r1") -> Tensor:
    """Penalty on ∇ₓD at real inputs (``real_inputs`` must require grad; graph kept for backward).

    ``"r1"``: ``mean_b ‖∇‖²`` (true R1, spec §6.3 default). ``"reference"``: ``mean_b (g − 1)²``
    with ``g = sqrt(1e-6 + ‖∇‖²)``, the released code's form.
    """
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_inputs, create_graph=True)
    squared_norm = grad.float().pow(2).flatten(1).sum(1)  # (B,)
    if form == "r1":
        return squared_norm.mean()
    if form == "reference":
        return (torch.sqrt(1e-6 + squared_norm) - 1.0).pow(2).mean()
    raise ValueError(f"unknown gradient penalty {form!r}; use 'r1' or 'reference'")


def reconstruction_loss(real: Tensor, rebuilt: Tensor) -> Tensor:
    """``mean_{b,t} Σ_c (x − x̂)²``: squared error summed over channels, averaged over batch and frames."""
    return (real.float() - rebuilt.float()).pow(2).sum(1).mean()


# ---------------------------------------------------------------------------------------------
# A trained run
# ---------------------------------------------------------------------------------------------


@register_config("musika.latent_gan_run")
@dataclass(frozen=True)
class LatentGANRunConfig:
    """What a latent-GAN run directory stores besides weights: the GAN, its autoencoder, the data's units.

    The autoencoder's modules are saved in every checkpoint of the run (frozen), so the run
    directory alone generates audio; ``autoencoder_digest`` is its latent digest, checked against
    the chunk folder at training start and against the stored weights at load time.
    ``conditions`` is the chunk manifest's description of each conditioning curve (how it was
    computed and normalised), so generation can map user values (e.g. BPM) onto the 0..1 scale.
    """

    gan: LatentGANConfig
    autoencoder: AutoencoderTrainingConfig  # the level-2 autoencoder's run config
    autoencoder_digest: str
    autoencoder_run: str  # where the autoencoder came from (informative)
    conditions: dict[str, Any]
    frames_per_second: float  # level-2 frames per second of the latents
