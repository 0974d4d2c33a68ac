"""VGGish (Hershey et al., 2017) in PyTorch, loading a user's local weight file; no download.

VGGish is the embedding the original Fréchet Audio Distance (Kilgour et al., 2019) and the
Musika paper's FAD used. Its weights are Google's and are not shipped with orchestrion (no
package here can fetch them offline); a user who has them converts them once to safetensors
and passes the file with ``--weights``.

Front end (``vggish_input.py`` / ``mel_features.py`` of the TensorFlow release, reproduced):
mono 16 kHz; periodic-Hann STFT, 25 ms window (400 samples), 10 ms hop (160), FFT 512, magnitude
(not power); 64 HTK-mel bands 125–7 500 Hz (the DC bin gets no weight); ``log(mel + 0.01)``;
non-overlapping patches of 96 frames (0.96 s). One 1 s excerpt gives 98 frames → one patch.

Network: VGG conv stack ``64, M, 128, M, 256, 256, M, 512, 512, M`` (3×3, ReLU, 2×2 max-pool),
then fully connected 12 288 → 4 096 → 4 096 → 128. The TensorFlow model flattens channels last,
so the conv output is permuted to (B, 6, 4, 512) before flattening. The released model's last
layer is linear (``fc2`` without activation); the widespread torchvggish port adds a ReLU there
(``final_relu=True`` reproduces it).

Weight file layout (safetensors, float32), the tensor names of the torchvggish state dict
``vggish-10086976.pth``::

    features.0.weight   (64, 1, 3, 3)      features.0.bias   (64,)
    features.3.weight   (128, 64, 3, 3)    features.3.bias   (128,)
    features.6.weight   (256, 128, 3, 3)   features.6.bias   (256,)
    features.8.weight   (256, 256, 3, 3)   features.8.bias   (256,)
    features.11.weight  (512, 256, 3, 3)   features.11.bias  (512,)
    features.13.weight  (512, 512, 3, 3)   features.13.bias  (512,)
    embeddings.0.weight (4096, 12288)      embeddings.0.bias (4096,)
    embeddings.2.weight (4096, 4096)       embeddings.2.bias (4096,)
    embeddings.4.weight (128, 4096)        embeddings.4.bias (128,)

and, optionally (needed only for the PCA postprocess), from ``vggish_pca_params-970ea276.pth``::

    pca_eigen_vectors   (128, 128)         pca_means         (128,)

Conversion (once, with torch and safetensors, from files you already have; the PCA file holds
NumPy arrays, so it needs a full pickle load: do this only with a copy you trust)::

    import torch
    from safetensors.torch import save_file
    state = torch.load("vggish-10086976.pth", map_location="cpu", weights_only=True)
    pca = torch.load("vggish_pca_params-970ea276.pth", map_location="cpu", weights_only=False)
    state["pca_eigen_vectors"] = torch.as_tensor(pca["pca_eigen_vectors"]).float()
    state["pca_means"] = torch.as_tensor(pca["pca_means"]).float().reshape(-1)
    save_file({k: v.contiguous() for k, v in state.items()}, "vggish.safetensors")
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orchestrion.config import register_config
from orchestrion.errors import CheckpointError

PCA_NAMES = ("pca_eigen_vectors", "pca_means")
_QUANTIZE_RANGE = (-2.0, 2.0)  # AudioSet's 8-bit quantisation of PCA-whitened embeddings


@register_config("evaluation.vggish")
@dataclass(frozen=True)
class VGGishConfig:
    """The published VGGish front end and head; change nothing to match released weights."""

    sample_rate: int = 16000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    n_mels: int = 64
    fmin_hz: float = 125.0
    fmax_hz: float = 7500.0
    log_offset: float = 0.01
    patch_frames: int = 96
    embedding_dim: int = 128
    final_relu: bool = False


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``1127 · ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix(n_bins: int, sample_rate: float, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Triangular HTK-mel filters ``(n_bins, n_mels)`` for an rfft spectrum of ``n_bins`` bins.

    Band edges are evenly spaced in mel between ``fmin_hz`` and ``fmax_hz``; filters peak at 1;
    the DC bin gets no weight (as in VGGish's ``mel_features.py``).
    """
    if not 0 <= fmin_hz < fmax_hz <= sample_rate / 2:
        raise ValueError(f"mel range {fmin_hz}-{fmax_hz} Hz must lie inside 0-{sample_rate / 2} Hz")
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2, n_bins))
    edges = np.linspace(hertz_to_mel(fmin_hz), hertz_to_mel(fmax_hz), n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def vggish_log_mel(waves: torch.Tensor, config: VGGishConfig = VGGishConfig()) -> torch.Tensor:
    """Log-mel frames of 16 kHz mono audio: ``(B, samples)`` → ``(B, frames, 64)``.

    ``frames = 1 + (samples − 400) // 160`` (no padding, as in the TensorFlow release).
    """
    window = round(config.window_seconds * config.sample_rate)
    hop = round(config.hop_seconds * config.sample_rate)
    n_fft = 2 ** math.ceil(math.log2(window))
    if waves.shape[-1] < window:
        raise ValueError(f"VGGish needs at least {window} samples, got {waves.shape[-1]}")
    frames = waves.to(torch.float64).unfold(-1, window, hop)  # (B, frames, 400)
    hann = 0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(window, dtype=torch.float64) / window)
    magnitude = torch.fft.rfft(frames * hann, n=n_fft).abs()  # (B, frames, 257)
    mel = torch.from_numpy(mel_matrix(n_fft // 2 + 1, config.sample_rate, config.n_mels, config.fmin_hz,
                                      config.fmax_hz))
    return torch.log(magnitude @ mel + config.log_offset).to(torch.float32)


def _conv_stack() -> nn.Sequential:
    """VGG configuration ``64, M, 128, M, 256, 256, M, 512, 512, M``; indices match torchvggish."""
    layers: list[nn.Module] = []
    channels = 1
    for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(width)
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """VGGish: log-mel patches ``(B, 1, 96, 64)`` → embeddings ``(B, 128)``."""

    def __init__(self, config: VGGishConfig = VGGishConfig()) -> None:
        super().__init__()
        self.config = config
        self.features = _conv_stack()
        flat = 512 * (config.patch_frames // 16) * (config.n_mels // 16)  # 512 · 6 · 4 = 12 288
        head: list[nn.Module] = [
            nn.Linear(flat, 4096),
            nn.ReLU(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, config.embedding_dim),
        ]
        if config.final_relu:
            head.append(nn.ReLU())
        self.embeddings = nn.Sequential(*head)
        self.register_buffer("pca_eigen_vectors", torch.zeros(config.embedding_dim, config.embedding_dim))
        self.register_buffer("pca_means", torch.zeros(config.embedding_dim))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        maps = self.features(patches)  # (B, 512, 6, 4)
        maps = maps.permute(0, 2, 3, 1).reshape(maps.shape[0], -1)  # channels last, as TensorFlow flattens
        return self.embeddings(maps)  # (B, 128)

    def postprocess(self, embeddings: torch.Tensor) -> torch.Tensor:
        """AudioSet's release format: PCA whitening, clip to [−2, 2], 8-bit levels 0..255 (as float)."""
        whitened = (embeddings - self.pca_means) @ self.pca_eigen_vectors.T
        low, high = _QUANTIZE_RANGE
        return torch.round((whitened.clamp(low, high) - low) * (255.0 / (high - low)))


def load_vggish(path: str | Path, *, need_pca: bool = False, config: VGGishConfig = VGGishConfig()) -> VGGish:
    """Build :class:`VGGish` and load a safetensors file laid out as in the module docstring.

    Raises :class:`CheckpointError` naming the file for a missing or unreadable file, a missing,
    unexpected or wrongly shaped tensor, or (with ``need_pca``) missing PCA parameters.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: VGGish weight file not found")
    try:
        saved = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from error
    with torch.device("meta"):  # shapes only: random initialisation of 72 M values would be thrown away
        model = VGGish(config)
    expected = model.state_dict()
    required = [name for name in expected if name not in PCA_NAMES or need_pca]
    missing = [name for name in required if name not in saved]
    unexpected = sorted(set(saved) - set(expected))
    wrong_shape = [
        f"{name} {tuple(saved[name].shape)}, expected {tuple(expected[name].shape)}"
        for name in expected
        if name in saved and saved[name].shape != expected[name].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
    if wrong_shape:
        problems.append(f"wrong shape: {'; '.join(wrong_shape[:3])}")
    if problems:
        raise CheckpointError(
            f"{path}: not VGGish weights in the torchvggish layout ({', '.join(problems)}); "
            "docs/evaluation-metrics.md lists the tensor names and gives a conversion recipe"
        )
    state = {
        name: saved[name].to(torch.float32) if name in saved else torch.zeros(value.shape)
        for name, value in expected.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
