"""Training data for the latent GAN: folders of stereo level-2 latent chunks with conditioning curves.

Folder layout (format ``orchestrion.latent-chunks``, version 1; spec §9 and §8 [PROPOSED])

- ``manifest.json``::

      {"format": "orchestrion.latent-chunks", "version": 1,
       "autoencoder": {"run": str, "digest": str, "level": 2},
       "latent_dim": 64, "channels": 2, "frames_per_second": 10.77, "chunk_frames": 512, "min_frames": 256,
       "conditions": {"note_density": {...how + normalisation constants...}, "tempo": {"bpm_min": 60, ...}},
       "chunks": [{"file": "000000.safetensors", "source": "<relative audio path>", "frames": 512}, ...]}

- one ``NNNNNN.safetensors`` per chunk: ``latents`` float32 ``(channels·latent_dim, frames)`` =
  ``[left dims | right dims]`` (mono duplicated), and one float32 ``(frames,)`` curve in [0, 1] per
  condition (``note_density``, ``tempo``) on the same level-2 frame grid. Chunks hold only frames
  computed from real audio, never from the encoder's zero padding. ``frames`` is ``chunk_frames``
  except for files shorter than one chunk (but at least ``min_frames`` long), which give one chunk
  of their own length.
- ``report.jsonl``: the audio files that were skipped, and why.

:class:`LatentChunkDataset` serves random crops of these chunks to the shared trainer;
:func:`orchestrion.musika.latent_prepare.prepare_latents` writes such folders from audio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from orchestrion.errors import DataError
from orchestrion.fileio import atomic_path, atomic_write_text, read_json
from orchestrion.training import SampleKey

FORMAT = "orchestrion.latent-chunks"
VERSION = 1
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.jsonl"
CONDITION_NAMES = ("note_density", "tempo")
CHUNK_FRAMES = 512  # max_lat_len of the reference (≈ 47.5 s at 10.77 frames/s)
MIN_FRAMES = 256  # one training window of the techno GAN: latlen = 2·seq_len
DEFAULT_CACHE_BYTES = 1024**3


def chunk_name(number: int) -> str:
    """File name of chunk ``number``: ``000042.safetensors``."""
    return f"{number:06d}.safetensors"


def save_chunk(path: str | Path, latents: torch.Tensor, curves: Mapping[str, torch.Tensor]) -> Path:
    """Write one chunk atomically: ``latents`` (C, T) float32 and one (T,) curve in [0, 1] per condition."""
    latents = latents.detach().to("cpu", torch.float32).contiguous()
    if latents.dim() != 2:
        raise ValueError(f"chunk latents must be (channels·dim, frames), got shape {tuple(latents.shape)}")
    tensors = {"latents": latents}
    for name, curve in curves.items():
        curve = curve.detach().to("cpu", torch.float32).contiguous()
        if curve.shape != (latents.shape[1],):
            raise ValueError(f"{name} curve has shape {tuple(curve.shape)}, expected ({latents.shape[1]},)")
        if curve.numel() and not (curve.min() >= 0 and curve.max() <= 1):
            raise ValueError(f"{name} curve leaves [0, 1] (min {curve.min():.3g}, max {curve.max():.3g})")
        tensors[name] = curve
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": str(VERSION)})
    return Path(path)


def write_manifest(folder: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``folder/manifest.json`` atomically (the last file of a finished folder)."""
    return atomic_write_text(Path(folder) / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


def build_manifest(
    *,
    autoencoder_run: str,
    digest: str,
    latent_dim: int,
    frames_per_second: float,
    chunk_frames: int,
    min_frames: int,
    conditions: Mapping[str, Mapping[str, Any]],
    chunks: Sequence[Mapping[str, Any]],
    channels: int = 2,
) -> dict[str, Any]:
    """The manifest of a finished folder (see the module docstring for the layout)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "autoencoder": {"run": autoencoder_run, "digest": digest, "level": 2},
        "latent_dim": latent_dim,
        "channels": channels,
        "frames_per_second": frames_per_second,
        "chunk_frames": chunk_frames,
        "min_frames": min_frames,
        "conditions": {name: dict(info) for name, info in conditions.items()},
        "chunks": [dict(chunk) for chunk in chunks],
    }


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The validated ``manifest.json`` of a latent-chunk folder; anything malformed raises :class:`DataError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: latent chunk folder not found")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise DataError(
            f"{folder}: no {MANIFEST_NAME}; not a finished latent-chunk folder "
            "(make one with `orchestrion musika prepare-latents`)"
        )
    manifest = read_json(path, "latent chunk manifest", DataError)
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise DataError(f"{path}: not a latent chunk manifest (format {found!r}, expected {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise DataError(f"{path}: latent chunk format version {manifest.get('version')!r} is not supported "
                        f"(this orchestrion reads version {VERSION})")
    try:
        digest = manifest["autoencoder"]["digest"]
        sizes = [int(manifest[key]) for key in ("latent_dim", "channels", "chunk_frames")]
        chunks = [(str(c["file"]), int(c["frames"])) for c in manifest["chunks"]]
        conditions = dict(manifest["conditions"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: latent chunk manifest is missing or has a bad field ({error!r})") from error
    if not isinstance(digest, str) or min(sizes) < 1:
        raise DataError(f"{path}: latent chunk manifest has a bad autoencoder digest or size")
    if not chunks:
        raise DataError(f"{path}: the manifest lists no chunks")
    for file, frames in chunks:
        if frames < 1 or Path(file).name != file or not (folder / file).is_file():
            raise DataError(f"{folder / file}: chunk listed in the manifest is missing or invalid ({frames} frames)")
    unknown = set(conditions) - set(CONDITION_NAMES)
    if unknown:
        raise DataError(f"{path}: unknown conditions {sorted(unknown)} (known: {', '.join(CONDITION_NAMES)})")
    return manifest


class LatentChunkDataset(Dataset):
    """Random crops of a latent-chunk folder for :class:`~orchestrion.training.Trainer`.

    ``dataset[SampleKey(index, seed)]`` → ``{"latents": float32 (channels·latent_dim, crop_frames),
    "conditions": float32 (len(conditions), crop_frames)}``: item ``index`` names a chunk (a chunk of F
    frames owns ``max(1, F // crop_frames)`` consecutive indices, so every frame is equally likely) and
    the crop offset is drawn uniformly from the key's seed; conditions are cropped at the same offset.
    ``len(dataset)`` = that number of indices: one epoch sees about every frame once.

    Args:
        folder: a folder written by :func:`~orchestrion.musika.latent_prepare.prepare_latents`.
        crop_frames: frames per crop (the GAN's ``latlen = 2·seq_len``); no chunk may be shorter.
        conditions: names of the curves to return, in this channel order (subset of ``CONDITION_NAMES``).
        autoencoder_digest: the :func:`~orchestrion.musika.inference.latent_digest` of the autoencoder the
            GAN is trained with; a folder made by another autoencoder is refused with :class:`DataError`.
        cache_bytes: the folder is read into memory once when its tensors fit, else crops are read from disk.
    """

    def __init__(
        self,
        folder: str | Path,
        crop_frames: int,
        conditions: Sequence[str] = CONDITION_NAMES,
        *,
        autoencoder_digest: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.conditions = tuple(conditions)
        self.crop_frames = int(crop_frames)
        made_by = self.manifest["autoencoder"]["digest"]
        if autoencoder_digest is not None and autoencoder_digest != made_by:
            raise DataError(
                f"{self.folder}: latents were made by autoencoder {made_by} "
                f"({self.manifest['autoencoder'].get('run', '?')}), "
                f"but this GAN uses autoencoder {autoencoder_digest}; "
                "prepare the latents again with the GAN's autoencoder"
            )
        missing = [name for name in self.conditions if name not in self.manifest["conditions"]]
        if missing or len(set(self.conditions)) != len(self.conditions):
            raise DataError(
                f"{self.folder}: conditions {list(self.conditions)} requested, the folder has "
                f"{sorted(self.manifest['conditions'])} (each at most once)"
            )
        self.files = [self.folder / c["file"] for c in self.manifest["chunks"]]
        self.frames = np.array([int(c["frames"]) for c in self.manifest["chunks"]], dtype=np.int64)
        if self.crop_frames < 1 or self.crop_frames > self.frames.min():
            shortest = int(self.frames.argmin())
            raise DataError(
                f"{self.folder}: crops of {self.crop_frames} frames do not fit chunk {self.files[shortest].name} "
                f"({self.frames[shortest]} frames); prepare the latents with a minimum length of at least "
                f"{self.crop_frames} frames"
            )
        # index → chunk: chunk i owns indices [starts[i], starts[i + 1])
        self.starts = np.concatenate([[0], np.cumsum(np.maximum(1, self.frames // self.crop_frames))])
        self.cached: list[dict[str, torch.Tensor]] | None = None
        row_bytes = 4 * (self.channels * self.latent_dim + len(CONDITION_NAMES))
        if int(self.frames.sum()) * row_bytes <= cache_bytes:
            self.cached = [self._read(i) for i in range(len(self.files))]

    @property
    def channels(self) -> int:
        """Audio channels (2: left, right)."""
        return int(self.manifest["channels"])

    @property
    def latent_dim(self) -> int:
        """Level-2 latent dimensions per audio channel."""
        return int(self.manifest["latent_dim"])

    @property
    def frames_per_second(self) -> float:
        """Level-2 frames per second of audio."""
        return float(self.manifest["frames_per_second"])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def chunk_of(self, index: int) -> int:
        """The chunk that item ``index`` is drawn from."""
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items")
        return int(np.searchsorted(self.starts, index, side="right") - 1)

    def crop_offset(self, key: SampleKey) -> tuple[int, int]:
        """``(chunk, first frame)`` of the crop that ``key`` selects."""
        chunk = self.chunk_of(key.index)
        offset = int(np.random.default_rng(key.seed).integers(0, self.frames[chunk] - self.crop_frames + 1))
        return chunk, offset

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        chunk, offset = self.crop_offset(key)
        stop = offset + self.crop_frames
        if self.cached is not None:
            tensors = self.cached[chunk]
            latents = tensors["latents"][:, offset:stop]
            curves = [tensors[name][offset:stop] for name in self.conditions]
        else:
            latents, curves = self._read_crop(chunk, offset, stop)
        conditions = torch.stack(curves) if curves else latents.new_zeros(0, self.crop_frames)
        return {"latents": latents.clone(), "conditions": conditions.clone()}

    def _open(self, chunk: int):
        path = self.files[chunk]
        try:
            handle = safe_open(str(path), framework="pt")
        except (SafetensorError, OSError, ValueError) as error:
            raise DataError(f"{path}: not a readable latent chunk ({error})") from error
        expected = {"latents": (self.channels * self.latent_dim, int(self.frames[chunk]))}
        expected.update({name: (int(self.frames[chunk]),) for name in self.conditions})
        for name, shape in expected.items():
            if name not in set(handle.keys()) or tuple(handle.get_slice(name).get_shape()) != shape:
                raise DataError(f"{path}: tensor {name!r} is missing or not shaped {shape}")
        return handle

    def _read(self, chunk: int) -> dict[str, torch.Tensor]:
        handle = self._open(chunk)
        return {name: handle.get_tensor(name).float() for name in ("latents", *self.conditions)}

    def _read_crop(self, chunk: int, offset: int, stop: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        handle = self._open(chunk)
        latents = handle.get_slice("latents")[:, offset:stop].float()
        return latents, [handle.get_slice(name)[offset:stop].float() for name in self.conditions]
