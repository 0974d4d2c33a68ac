"""Building blocks shared by Musika's autoencoders: AddNoise, the conv block, window helpers.

All tensors are (B, channels, frames); every convolution is 1-D over frames (the reference emulates
this with (1, k) 2-D kernels on (B, 1, T, C)).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (rows, frames) -> (rows, 1, frames) float32 standard normals: noise that a caller controls, e.g. drawn per
# position so that a sequence decoded in any batching gets the same noise (orchestrion.musika.generate)
NoiseSampler = Callable[[int, int], Tensor]


def he_uniform_(module: nn.Module) -> None:
    """He-uniform weights (limit sqrt(6 / fan_in)) and zero biases, as Keras ``he_uniform``.

    For transposed convs PyTorch's fan_in is ``out_channels · k``, which is also what Keras computes
    from its (k, out, in) kernel, so the initial scales match the reference.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class AddNoise(nn.Module):
    """``x + b·n`` with ``n ~ N(0, 1)`` of shape (B, 1, T): one value per frame, shared by all channels.

    ``b`` is a learned scalar starting at 0. Noise is sampled at inference too (as the reference);
    :func:`configure_noise` switches it off or makes it reproducible with a ``torch.Generator``;
    a ``sampler`` (:data:`NoiseSampler`), when set, supplies the noise instead of the generator.
    """

    def __init__(self) -> None:
        super().__init__()
        # shape () while training; fuse_for_inference turns it into a per-channel (C, 1) scale
        self.scale = nn.Parameter(torch.zeros(()))
        self.enabled = True
        self.generator: torch.Generator | None = None
        self.sampler: NoiseSampler | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        if self.sampler is not None:
            noise = self.sampler(x.shape[0], x.shape[2]).to(x.device, x.dtype)
        else:
            noise = torch.randn(
                x.shape[0], 1, x.shape[2], generator=self.generator, device=x.device, dtype=x.dtype
            )
        return x + self.scale * noise


def configure_noise(module: nn.Module, enabled: bool = True, generator: torch.Generator | None = None) -> None:
    """Switch every :class:`AddNoise` inside ``module`` on/off and set its random generator.

    With ``enabled=False`` decoding is deterministic; with a seeded generator it is reproducible
    (for a given batching of windows, since the noise is drawn per call).
    """
    for layer in module.modules():
        if isinstance(layer, AddNoise):
            layer.enabled = enabled
            layer.generator = generator


def same_padding(kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding (left, right) of a strided conv on a length that is a multiple of the stride.

    Total ``max(k - s, 0)``, left gets the smaller half: k4/s1 -> (1, 2), k3/s2 -> (0, 1), k1 -> (0, 0).
    """
    total = max(kernel - stride, 0)
    return total // 2, total - total // 2


class ConvBlock(nn.Module):
    """Reference ``conv_util``: conv (bias) -> optional AddNoise -> BatchNorm -> swish.

    ``padding="valid"`` pads nothing; ``"same"`` reproduces TF "same" (output length = T / stride for
    convs, T · stride for transposed convs). ``transposed=True`` needs ``(kernel - stride)`` even
    (k4/s2 -> PyTorch padding 1, an exact 2x).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        *,
        padding: str = "same",
        transposed: bool = False,
        noise: bool = False,
        bn_momentum: float = 0.01,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.pad = (0, 0)
        if transposed:
            if padding != "same" or (kernel - stride) % 2:
                raise ValueError(f"transposed conv k={kernel} s={stride} needs 'same' padding and even k - s")
            self.conv = nn.ConvTranspose1d(
                in_channels, out_channels, kernel, stride=stride, padding=(kernel - stride) // 2
            )
        else:
            if padding == "same":
                self.pad = same_padding(kernel, stride)
            elif padding != "valid":
                raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
            self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride)
        self.noise = AddNoise() if noise else None
        self.bn = nn.BatchNorm1d(out_channels, momentum=bn_momentum, eps=bn_eps)

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the eval-mode BatchNorm into the conv (and the noise scale), in place; inference only.

        ``BN(conv(x) + b·n) = a·conv(x) + (β - a·μ) + (a·b)·n`` with ``a = γ / sqrt(var + ε)``, so the
        conv weight is scaled by ``a`` per output channel, the bias absorbs the shift and the noise
        scale becomes per-channel. Afterwards ``self.bn`` is the identity.
        """
        if isinstance(self.bn, nn.Identity):
            return
        bn = self.bn
        a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        out_axis = 1 if isinstance(self.conv, nn.ConvTranspose1d) else 0
        shape = [1, 1, 1]
        shape[out_axis] = -1
        self.conv.weight.mul_(a.reshape(shape))
        self.conv.bias.copy_((self.conv.bias - bn.running_mean) * a + bn.bias)
        if self.noise is not None:
            self.noise.scale = nn.Parameter(self.noise.scale * a[:, None])  # (C, 1) broadcasts over (B, C, T)
        self.bn = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.pad != (0, 0):
            x = F.pad(x, self.pad)
        x = self.conv(x)
        if self.noise is not None:
            x = self.noise(x)
        return F.silu(self.bn(x))


def split_windows(x: Tensor, window: int) -> Tensor:
    """(B, C, n·window) -> (B·n, C, window): consecutive windows stacked on the batch axis.

    Batch-major order (b0w0, b0w1, ..., b1w0, ...); the reference stacks window-major, which is
    immaterial because every window is processed independently. Inverse: :func:`merge_windows`.
    """
    batch, channels, frames = x.shape
    if frames % window:
        raise ValueError(f"{frames} frames are not a whole number of {window}-frame windows")
    n = frames // window
    return x.reshape(batch, channels, n, window).permute(0, 2, 1, 3).reshape(batch * n, channels, window)


def merge_windows(x: Tensor, batch: int) -> Tensor:
    """(B·n, C, window) -> (B, C, n·window), inverse of :func:`split_windows`."""
    total, channels, window = x.shape
    n = total // batch
    return x.reshape(batch, n, channels, window).permute(0, 2, 1, 3).reshape(batch, channels, n * window)
