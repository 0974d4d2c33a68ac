"""Configs of Musika's two autoencoder levels (spec musika.md §3-4), as frozen dataclasses.

Defaults are the 22.05 kHz reference sizes; smaller models are one argument away::

    Level1Config()                   # universal level-1 AE of the reference (513 bins -> 128 dims)
    Level1Config.preset("debug")     # tiny widths, builds in milliseconds (tests)
    Level2Config.preset("techno")    # ratio 8, 64 dims (reference)
    Level2Config.preset("piano")     # ratio 16, 32 dims (paper; layers [PROPOSED], spec §4.3)
    AutoencoderTrainingConfig.preset_config("debug", level=1, phase=2)   # a whole training run

Convolution stacks are written as parallel flat tuples (channels, kernels, strides) so the JSON
form stays readable and the strict loader of :mod:`orchestrion.config` can check every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from orchestrion.audio.spectral import HOP, N_BINS, SAMPLE_RATE
from orchestrion.config import register_config
from orchestrion.errors import ConfigError


def _valid_length(length: int, kernel: int, stride: int) -> int:
    return (length - kernel) // stride + 1


# --------------------------------------------------------------------------------------------- small
# The `small` preset: the best quality per CPU-hour on 2 cores (issue 13), for users without a GPU
# and for the bundled models. Between `debug` (a test fixture, 16-32 channels) and the paper's sizes.
#
# Widths: the reference widths x 1/4, latent interface kept (128 level-1 dims, ratio 8 x 64 level-2
# dims), so level 2 and the latent GAN are unchanged. Forward cost per STFT frame (encoder + phase-1
# decoder, counted by benchmarks/musika_ae_preset_speed.py): debug 33 k MAC, x1/8 209 k, x1/4 563 k
# (695 k with small's linear shortcut), x1/2 1.69 M, reference 5.62 M. Phase-1 training for 150 s each
# on 8 wesnoth tracks, without the shortcut,
# batch 32, lr 3e-4, 1 thread (2-core machine shared with other jobs, 1-min load 1.7-5.1):
#   x1/8     6.57 steps/s   986 steps  L1 0.1025   (load 2.9)
#   x1/4     3.66 steps/s   549 steps  L1 0.0934   (load 3.9)  <- lowest loss for the same CPU time
#   x1/2     1.44 steps/s   216 steps  L1 0.0985   (load 1.7; 1.22 steps/s, L1 0.1003 at load 5.1)
#   x1/4 b16 3.12 steps/s   468 steps  L1 0.1068   (load 3.5): batch 16 is worse than 32 per second
# x1/8 is short of capacity already (more steps, higher loss); x1/2 learns more per step but
# costs 3x the MACs and would get only ~15 k steps in 3 hours. Torch with 2 threads ran ~5x slower
# than with 1 on the loaded machine (thread contention), so these are 1-thread numbers.
# Discriminator: its 2-D convs dominate a phase-2 step (batch 32, 1 thread, load ~4: D at the
# reference widths / 8 = 16-128 channels 4.1 s, at 8-64 channels 1.75 s, the decoder side
# ~1.7 s), so it is 1/8 of the reference widths.
# Linear shortcut and phase-1 learning rate 1e-3 (issue 13). The U-Net alone learned slowly on real
# music: after 62 min (9 k steps, lr 3e-4) its held-out magnitude with the input phase scored log-mel
# 0.210 (feature L1 0.083), where the best *linear* 128-number frame code (PCA, evaluation report)
# scores 0.093 (0.052). With Level1Config.linear_shortcut the network starts from a linear code and
# refines it: the same training reached 0.099 (feature L1 0.059) in 16 min (2 k steps, lr 1e-3); both on
# the 2 held-out Wesnoth tracks, middle 20 s, `orchestrion evaluate reconstruction --oracle-phase`.
# benchmarks/musika_ae_preset_speed.py, 150 s each on the 39 training tracks (1 thread, load ~3),
# held-out L1: small 1e-3 0.0917, small 3e-4 0.1024, small-unet 3e-4 0.1028, small-unet 1e-3 0.1260
# (the shortcut costs 23 % more MACs: 1.66 vs 1.92 steps/s). Phase 2 and level 2 stay at 3e-4 (3x the
# paper's 1e-4, which is tuned for 1 M steps), not swept further.
# Cosine schedule for phase 1: at a constant 1e-3 the loss spiked now and then and a run ended wherever
# the last spike left it (study run of 6 k steps, held-out log-mel with the input phase 0.113 / 0.093 /
# 0.137 at steps 4 k / 5 k / 6 k); decayed by half a cosine to 0 at the run's last step, the same run
# scored 0.074 / 0.077 / 0.079 (feature L1 0.0531 / 0.0526 / 0.0523; same files and command as above).
# Steps (defaults when --steps is not given): level 1 phase 1 20 k (~2 h at 2.7 steps/s), phase 2
# 1 k (~1 h at 3.3 s/step); level 2 phase 1 5 k (~1 h at 1.6 steps/s), phase 2 1 k. Rates of the
# quality study (scripts/autoencoder_study.sh: 1 thread per run on 2 cores; phase 2 next to a second one).
SMALL_LEVEL1 = {
    "encoder_channels": (136, 144, 160, 176, 192),
    "decoder_channels": (192, 128, 96, 80),
    "decoder_head_channels": 320,
    "linear_shortcut": True,
    "phase_decoder": "separate",
    "phase_output": "demodulated",
}
# Phase form of the phase U-Net (Level1Config.phase_output). Study data, phase 2 from one phase-1 run (2000
# steps), 2 held-out tracks, `orchestrion evaluate reconstruction`, log-mel of the learned-phase audio at
# 100 / 200 phase-2 steps: angle 0.302 / 0.247, atan2 0.184 / 0.188, demodulated 0.178 / 0.166, and 0.160 /
# 0.159 at 300 / 400 (that run's magnitude with Griffin-Lim: 0.139, with the input phase 0.131; exact
# magnitude with random phase 0.256). The clipped angle starts worse than a random phase; pairs learn from
# the first steps, and pairs relative to the bin-centre rotation learn fastest. AMD EPYC, 1 thread per run,
# three runs side by side (angle and atan2 stopped at 200). docs/evaluation.md compares angle and
# demodulated on the study's phase-1 run.
# Level 2 learned slowly, like level 1 without its shortcut. Study data, on the level-1 run of 6 k steps,
# 2 held-out tracks (middle 20 s), `orchestrion evaluate reconstruction --griffin-lim-on-model`: after
# 1500 steps at 3e-4 its magnitude error through Dec1 (feature L1) was 0.098 (log-mel 0.400 with the
# learned phase, 0.337 with Griffin-Lim), where a linear 64-number code of each chunk of 8 level-1
# frames (PCA of training latents) keeps 0.074 and level 1 alone has 0.052. With the linear shortcut the
# same 1500 steps reach 0.078 (log-mel 0.246 / 0.186), and 0.074 (0.226 / 0.163) at 4 k steps, where it
# plateaus (0.236 / 0.170 at 4.5 k). A cosine schedule from 1e-3 gave 0.077 (0.248 / 0.183) over 1500
# steps and 0.075 (0.227 / 0.165) over 4500: no better, so not adopted. On a second level-1 run (log-mel
# 0.155 alone with its learned phase), 1500 level-2 steps scored 0.079 (0.234 / 0.190); without the latent
# term (lambda_latent 0) 0.081 (0.241 / 0.200), so it stays; with wider stacks (Enc2 128-256 channels,
# Dec2 256-128: 1.8x the parameters, 1.3x the time per step) 0.078 (0.226 / 0.183), about what the same
# CPU time buys as more steps of these widths (-0.021 log-mel from 1.5 k to 3 k steps), so not adopted.
SMALL_LEVEL2 = {
    "encoder_channels": (64, 128, 160, 160, 192, 192),
    "decoder_channels": (192, 192, 160, 128, 96),
    "linear_shortcut": True,
}
SMALL_DISCRIMINATOR = (8, 16, 32, 64, 64)
SMALL_TRAINING = {"batch_size": 32, "learning_rate": 3e-4}
SMALL_LEVEL1_PHASE1_LEARNING_RATE = 1e-3
SMALL_LEVEL1_PHASE1_LR_SCHEDULE = "cosine"
# Phase 2's phase-derivative term. Study data, 400 phase-2 steps (separate phase U-Net) from one phase-1 run,
# 2 held-out tracks: log-mel / MSD / LSD dB of the learned-phase audio 0.155 / 1.64 / 5.41 at weight 1,
# 0.141 / 1.59 / 5.27 at 5, 0.143 / 1.61 / 5.28 at 20 (better at 5 on the training and out-of-domain tracks
# too: docs/evaluation.md). The shared layout did worse at 5 than at 1 (0.186 against 0.161).
SMALL_LEVEL1_PHASE2_LAMBDA_PHASE = 5.0
SMALL_STEPS = {(1, 1): 20_000, (1, 2): 1_000, (2, 1): 5_000, (2, 2): 1_000}  # (level, phase) -> steps


PHASE_DECODERS = ("shared", "separate")
PHASE_OUTPUTS = ("angle", "atan2", "demodulated")


@register_config("musika.level1")
@dataclass(frozen=True)
class Level1Config:
    """Level-1 autoencoder: one STFT frame (513 bins) <-> one latent vector (spec §3)."""

    n_bins: int = N_BINS  # spectrogram bins = encoder input channels
    latent_dim: int = 128  # level-1 latent channels, tanh-bounded
    # Enc1 block widths, kernel 1 each (frame-wise), then a 1x1 conv to latent_dim + tanh.
    encoder_channels: tuple[int, ...] = (544, 576, 640, 704, 768)
    # Dec1 U-Net widths g0..g3 (3h, 2h, 1.5h, 1.25h with h = hop = 256): g0 is a 1x1 conv, each later
    # one a k3/s2 conv. The up path mirrors them (u3 -> width of g2, u2 -> g1, u1 -> g0) so the
    # skips are additions, as in spec §3.2.
    decoder_channels: tuple[int, ...] = (768, 512, 384, 320)
    decoder_head_channels: int = 1280  # "h" block (5h) before the output conv
    window_frames: int = 64  # Dec1 works on windows of 64 latent frames (0.743 s)
    with_phase: bool = True  # False = phase-1 decoder (magnitude only, spec §5.1)
    # "shared": one U-Net whose output conv makes magnitude and phase (the 22 kHz reference);
    # "separate": a second U-Net of the same widths makes the phase, and phase 2 trains only that one,
    # so the magnitude stays exactly as phase 1 left it (see Level1Decoder.enable_phase).
    phase_decoder: str = "shared"
    # How the phase channels become a phase. "angle": one channel per bin, clipped to [-1, 1], is phase/π
    # (the reference). "atan2": a (real, imaginary) pair per bin whose angle is the phase (APNet's parallel
    # phase estimation, Ai & Ling 2023): a bin's phase turning steadily over time is then a smooth rotation
    # of the pair, not a sawtooth with a jump at ±π, and no output sits stuck at a clip. "demodulated": as
    # atan2, but the pair's angle is the phase relative to the bin's centre frequency, which turns bin k by
    # 2π·k·hop/n_fft = k·π/2 per frame; the network makes only how far each bin strays from it (constant for
    # a partial at a bin's centre). The rotation repeats every 4 frames, so windows of 64 decode alike at
    # any position. Both need phase_decoder="separate" (the phase U-Net's output conv makes the pairs).
    # See SMALL_LEVEL1.
    phase_output: str = "angle"
    # A learned linear map from input to output of Enc1 (513 -> 128) and of Dec1 (128 -> 513), added
    # before the tanh / clip: the network starts from (and refines) the best linear frame code instead
    # of having to learn near-linear maps through its deep swish stacks. Not in the paper; see SMALL_LEVEL1.
    linear_shortcut: bool = False
    noise: bool = True  # AddNoise in decoder blocks (learned scale, starts at 0)
    bn_momentum: float = 0.01  # PyTorch convention; Keras momentum 0.99
    bn_eps: float = 1e-3  # Keras default

    def __post_init__(self) -> None:
        if self.phase_decoder not in PHASE_DECODERS:
            raise ConfigError(
                f"Level1Config.phase_decoder must be one of {PHASE_DECODERS}, got {self.phase_decoder!r}"
            )
        if self.phase_output not in PHASE_OUTPUTS:
            raise ConfigError(
                f"Level1Config.phase_output must be one of {PHASE_OUTPUTS}, got {self.phase_output!r}"
            )
        if self.phase_output != "angle" and self.phase_decoder != "separate":
            raise ConfigError(
                f"Level1Config.phase_output={self.phase_output!r} needs phase_decoder='separate' (a phase U-Net "
                "of its own)"
            )
        if len(self.decoder_channels) < 2:
            raise ConfigError("Level1Config.decoder_channels needs at least 2 widths (g0 and one down stage)")
        factor = 2 ** (len(self.decoder_channels) - 1)
        if self.window_frames % factor:
            raise ConfigError(
                f"Level1Config.window_frames={self.window_frames} must be a multiple of {factor} "
                f"(the decoder halves time {len(self.decoder_channels) - 1} times)"
            )

    @classmethod
    def preset(cls, name: str, **overrides) -> Level1Config:
        """A named config: ``"default"`` (reference size) or ``"debug"`` (tiny); fields overridable."""
        presets = {
            "default": {},
            "debug": {
                "latent_dim": 16,
                "encoder_channels": (24, 24),
                "decoder_channels": (24, 20, 16, 16),
                "decoder_head_channels": 32,
            },
            "small": SMALL_LEVEL1,
        }
        if name not in presets:
            raise ConfigError(f"unknown level-1 preset {name!r}; choose from {sorted(presets)}")
        return cls(**{**presets[name], **overrides})

    def with_phase_network(self, phase_decoder: str | None = None, phase_output: str | None = None) -> Level1Config:
        """This config with its phase half (phase 2); ``phase_decoder``/``phase_output`` replace its own.
        A shared output conv has one phase form, so choosing ``"shared"`` alone implies ``"angle"``."""
        phase_decoder = phase_decoder or self.phase_decoder
        if phase_output is None:
            phase_output = "angle" if phase_decoder == "shared" else self.phase_output
        return replace(self, with_phase=True, phase_decoder=phase_decoder, phase_output=phase_output)

    @property
    def hop(self) -> int:
        """Samples per level-1 latent frame (256)."""
        return HOP

    @property
    def frames_per_second(self) -> float:
        """Level-1 latent frames per second at 22.05 kHz (86.13)."""
        return SAMPLE_RATE / HOP


@register_config("musika.level2")
@dataclass(frozen=True)
class Level2Config:
    """Level-2 autoencoder: ``ratio`` level-1 latents <-> one level-2 vector (spec §4).

    The encoder runs valid (unpadded) convolutions on independent chunks of ``ratio`` frames; the
    decoder maps ``window_frames // ratio`` level-2 vectors to one Dec1 window of level-1 latents.
    """

    input_dim: int = 128  # level-1 latent dim
    latent_dim: int = 64  # level-2 latent dim
    ratio: int = 8  # level-1 frames per level-2 frame
    # Enc2 blocks (conv + BN + swish, valid padding) then a 1x1 conv to latent_dim + tanh.
    encoder_channels: tuple[int, ...] = (256, 512, 640, 640, 768, 768)
    encoder_kernels: tuple[int, ...] = (1, 3, 3, 1, 3, 2)
    encoder_strides: tuple[int, ...] = (1, 1, 1, 1, 1, 1)
    # Dec2 blocks ("same" padding, noise + BN + swish): stride 1 = conv, stride 2 = transposed conv (k4);
    # then a 1x1 conv to input_dim + tanh.
    decoder_channels: tuple[int, ...] = (768, 768, 640, 512, 384)
    decoder_kernels: tuple[int, ...] = (4, 4, 4, 4, 4)
    decoder_strides: tuple[int, ...] = (1, 2, 2, 1, 2)
    window_frames: int = 64  # level-1 frames produced per decoder call (one Dec1 window)
    # A learned linear map beside each conv stack, added before the tanh: Enc2 maps a chunk of `ratio`
    # level-1 frames to one level-2 vector (a k=ratio conv), Dec2 one vector back to `ratio` frames (a
    # k=ratio, stride-ratio transposed conv). As Level1Config.linear_shortcut: the network starts from a
    # linear code and refines it. Not in the paper; see SMALL_LEVEL2.
    linear_shortcut: bool = False
    noise: bool = True
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3

    def __post_init__(self) -> None:
        enc = (self.encoder_channels, self.encoder_kernels, self.encoder_strides)
        dec = (self.decoder_channels, self.decoder_kernels, self.decoder_strides)
        if len({len(t) for t in enc}) != 1 or len({len(t) for t in dec}) != 1:
            raise ConfigError("Level2Config: channels/kernels/strides tuples must have equal lengths")
        length = self.ratio
        for kernel, stride in zip(self.encoder_kernels, self.encoder_strides, strict=True):
            # every input frame must be used: no frame may fall off the end of a strided valid conv
            if length < kernel or (length - kernel) % stride:
                raise ConfigError(
                    f"Level2Config: encoder layer k={kernel} s={stride} does not tile {length} frames exactly"
                )
            length = _valid_length(length, kernel, stride)
        if length != 1:
            raise ConfigError(f"Level2Config: encoder reduces a chunk of {self.ratio} frames to {length}, not 1")
        if any(s not in (1, 2) for s in self.decoder_strides):
            raise ConfigError("Level2Config: decoder strides must be 1 (conv) or 2 (transposed conv)")
        upsampling = 2 ** sum(s == 2 for s in self.decoder_strides)
        if upsampling != self.ratio:
            raise ConfigError(f"Level2Config: decoder up-samples by {upsampling}, ratio is {self.ratio}")
        if self.window_frames % self.ratio:
            raise ConfigError(f"Level2Config: window_frames={self.window_frames} not a multiple of {self.ratio}")

    @classmethod
    def preset(cls, name: str, **overrides) -> Level2Config:
        """``"techno"`` (reference: ratio 8, 64 dims), ``"piano"`` (ratio 16, 32 dims) or ``"debug"``.

        Piano [PROPOSED] (spec §4.3): the chunk of 16 frames is first merged pairwise by a valid
        k2/s2 conv (16 -> 8), then the techno stack collapses 8 -> 1; the decoder gets one extra
        transposed-conv stage (4 level-2 frames -> 64 level-1 frames). A single extra valid k3 conv
        would only absorb 2 of the 8 extra frames, so the stride is what makes the chunk collapse.
        """
        presets = {
            "techno": {},
            "piano": {
                "latent_dim": 32,
                "ratio": 16,
                "encoder_channels": (256, 384, 512, 640, 640, 768, 768),
                "encoder_kernels": (1, 2, 3, 3, 1, 3, 2),
                "encoder_strides": (1, 2, 1, 1, 1, 1, 1),
                "decoder_channels": (768, 768, 768, 640, 512, 384),
                "decoder_kernels": (4, 4, 4, 4, 4, 4),
                "decoder_strides": (1, 2, 2, 2, 1, 2),
            },
            "debug": {
                "input_dim": 16,
                "latent_dim": 8,
                "encoder_channels": (16, 16, 16, 16, 16, 16),
                "decoder_channels": (16, 16, 16, 16, 16),
            },
            "small": SMALL_LEVEL2,
        }
        if name not in presets:
            raise ConfigError(f"unknown level-2 preset {name!r}; choose from {sorted(presets)}")
        return cls(**{**presets[name], **overrides})

    @property
    def decoder_input_frames(self) -> int:
        """Level-2 frames per decoder window (8 techno, 4 piano)."""
        return self.window_frames // self.ratio

    @property
    def hop(self) -> int:
        """Audio samples per level-2 frame (2048 techno, 4096 piano)."""
        return HOP * self.ratio

    @property
    def frames_per_second(self) -> float:
        """Level-2 frames per second at 22.05 kHz (10.77 techno, 5.38 piano)."""
        return SAMPLE_RATE / self.hop


@register_config("musika.spectrogram_discriminator")
@dataclass(frozen=True)
class DiscriminatorConfig:
    """Widths of the spectrogram discriminator.

    ``channels`` are the output channels of the strided 4×4 convolutions (one stride-2
    stage each, so time and frequency shrink 2**len(channels) times before the 3×3 head).
    """

    channels: tuple[int, ...] = (64, 128, 256, 512, 512)  # spec §5.2 [PROPOSED]
    negative_slope: float = 0.2  # LeakyReLU slope

    @classmethod
    def preset(cls, name: str) -> DiscriminatorConfig:
        """``"debug"`` is tiny (milliseconds per step on CPU); every other preset uses the spec widths."""
        if name == "debug":
            return cls(channels=(8, 16, 16, 16, 16))
        if name == "small":
            return cls(channels=SMALL_DISCRIMINATOR)
        return cls()


KIND = "musika.autoencoder_training"
PRESETS = ("piano", "techno", "debug", "small")
CPU_PRESETS = ("debug", "small")  # sized to train on a CPU; the others are the paper's full sizes
LR_SCHEDULES = ("constant", "cosine")  # see AutoencoderTrainingConfig.lr_schedule
MS_FORMS = ("relative", "spec")  # phase-2 multi-scale distance: see AutoencoderTrainingConfig.ms_form
SILENCE_DB = -60.0  # training crops quieter than this (RMS dBFS) are redrawn
EDGE_SAMPLES = 768  # n_fft − hop: samples at each end that the iSTFT cannot rebuild
# Spec §5: 1 M iterations per phase for level 1, 400 k for level 2.
DEFAULT_STEPS = {1: 1_000_000, 2: 400_000}


def default_steps(preset: str, level: int, phase: int) -> int:
    """Steps of a run when ``--steps`` is not given: spec §5 for the paper's sizes, :data:`SMALL_STEPS` for small."""
    return SMALL_STEPS[(level, phase)] if preset == "small" else DEFAULT_STEPS[level]


@register_config(KIND)
@dataclass(frozen=True)
class AutoencoderTrainingConfig:
    """Everything a Musika autoencoder run needs to rebuild its modules and losses.

    Saved in every checkpoint of the run (the trainer refuses to resume with another one).
    ``level1.with_phase`` tells whether Dec1 has its phase half (false only in a level-1
    phase-1 run; level 2 always sits on a finished phase-2 level-1 model).
    """

    level: int = 1  # 1 or 2
    phase: int = 1  # 1 = reconstruction, 2 = adversarial with the encoder(s) frozen
    preset: str = "techno"  # name the model sizes came from (informative)
    level1: Level1Config = field(default_factory=Level1Config)
    level2: Level2Config = field(default_factory=Level2Config)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    batch_size: int = 32  # spec §5
    learning_rate: float = 1e-4  # Adam, every network (spec §5)
    beta1: float = 0.5
    beta2: float = 0.999
    # "constant": the paper's fixed rate; "cosine": half a cosine from learning_rate down to 0 at the run's
    # last step (--steps), which ends a run on a settled model instead of wherever the last loss spike left
    # it (small level 1 phase 1: see the comment above SMALL_LEVEL1)
    lr_schedule: str = "constant"
    lambda_rec: float = 1.0  # phase 2: weight of the L1 magnitude term
    lambda_ms: float = 4.0  # phase 2: weight of the multi-scale spectral distance
    # phase 2: form of that distance. "relative": log-power floored 80 dB under each real excerpt's peak,
    # in feature units (dB/σ), mean over scales; "spec": spec §5.2 [PROPOSED] ln(|X| + 1e-7) summed over
    # scales, which gave ~100x the L1 term's gradient and made phase 2 worsen magnitudes (issue 13).
    ms_form: str = "relative"
    # phase 2: weight of the phase-derivative term (instantaneous frequency + group delay of the decoder's
    # phase against the real excerpt's, audio.spectral.phase_derivative_loss). 0 = the paper's recipe,
    # where the phase is learned only through the adversarial and multi-scale terms.
    lambda_phase: float = 0.0
    lambda_latent: float = 1.0  # level-2 phase 1: weight of L1(Dec2(Enc2(z)), z) ([PROPOSED] target)
    silence_db: float = SILENCE_DB  # crops quieter than this (RMS dBFS) are redrawn

    def __post_init__(self) -> None:
        if self.level not in (1, 2) or self.phase not in (1, 2):
            raise ConfigError(f"level and phase must be 1 or 2, got level {self.level}, phase {self.phase}")
        if self.level == 1 and self.level1.with_phase != (self.phase == 2):
            raise ConfigError("a level-1 phase-1 decoder is magnitude-only; phase 2 adds the phase channels")
        if self.level == 2 and not self.level1.with_phase:
            raise ConfigError("level 2 trains on a finished level-1 model: train level 1 phase 2 first")
        if self.level2.input_dim != self.level1.latent_dim:
            raise ConfigError(
                f"level-2 input_dim {self.level2.input_dim} differs from level-1 latent_dim {self.level1.latent_dim}"
            )
        if min(self.lambda_rec, self.lambda_ms, self.lambda_phase) < 0:
            raise ConfigError("lambda_rec, lambda_ms and lambda_phase must be >= 0")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.ms_form not in MS_FORMS:
            raise ConfigError(f"ms_form must be one of {MS_FORMS}, got {self.ms_form!r}")

    @property
    def crop_frames(self) -> int:
        """STFT frames per training excerpt: two adjacent Dec1 windows (spec §5 [PROPOSED])."""
        return 2 * self.level1.window_frames

    @classmethod
    def preset_config(cls, name: str, level: int = 1, phase: int = 1, **overrides: Any) -> AutoencoderTrainingConfig:
        """Sizes of a named preset for a (level, phase): ``piano``/``techno`` (spec sizes), ``debug`` (tiny)
        or ``small`` (sized for a CPU)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose from {list(PRESETS)}")
        level1_sizes = name if name in ("debug", "small") else "default"
        level1 = Level1Config.preset(level1_sizes, with_phase=level == 2 or phase == 2)
        values: dict[str, Any] = {
            "level": level,
            "phase": phase,
            "preset": name,
            "level1": level1,
            "level2": Level2Config.preset(name),
            "discriminator": DiscriminatorConfig.preset(name),
            "batch_size": 4 if name == "debug" else 32,
        }
        if name == "debug":
            values["learning_rate"] = 3e-3  # tiny models tolerate larger steps; tests must converge in seconds
        if name == "small":
            values.update(SMALL_TRAINING)
            if (level, phase) == (1, 1):
                values["learning_rate"] = SMALL_LEVEL1_PHASE1_LEARNING_RATE
                values["lr_schedule"] = SMALL_LEVEL1_PHASE1_LR_SCHEDULE
            if (level, phase) == (1, 2):
                values["lambda_phase"] = SMALL_LEVEL1_PHASE2_LAMBDA_PHASE
        return cls(**{**values, **overrides})


# The latent GAN's configs ("musika.latent_gan", "musika.latent_gan_run") live with its model; checkpoints
# resolve "musika.*" kinds by importing this module, so importing that one here registers them too.
from orchestrion.musika import latent_gan as _latent_gan  # noqa: E402, F401
