"""Fréchet Audio Distance (Kilgour et al., 2019) on 1 s excerpts, as in the Musika paper.

Every audio file of a set is mixed to mono, resampled to the embedder's rate and cut into
consecutive non-overlapping 1 s excerpts (a shorter tail is dropped, so are digitally silent
excerpts, peak below −80 dBFS); each excerpt gives one embedding. A Gaussian ``N(μ, Σ)`` is fitted
to each set (``Σ`` the unbiased sample covariance) and

    FAD = ‖μ_r − μ_g‖² + tr(Σ_r) + tr(Σ_g) − 2 · tr((Σ_r Σ_g)^½).

The matrix square root goes through symmetric eigen-decompositions: with ``S = Σ_r^½`` (from
``eigh``, round-off eigenvalues set to 0), ``(Σ_r Σ_g)^½`` is similar to
``(S Σ_g S)^½``, a symmetric PSD matrix, so ``tr((Σ_r Σ_g)^½) = Σ_i sqrt(λ_i(S Σ_g S))``. This is
exact for singular covariances (fewer excerpts than dimensions) where ``scipy.linalg.sqrtm`` of
the non-symmetric product returns complex noise; the result is clipped at 0.

FAD is biased by set size and means only what its embedder sees, so the report also gives the
split-half FAD: the reference set split in two (alternate files when it has two or more, else
the first and second half of its excerpts), a distance between two samples of the *same*
music. A generated set near that number is as close to the reference as the reference is to itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from orchestrion.errors import AudioError, DataError
from orchestrion.fileio import SkipReport, atomic_write_text

EXCERPT_SECONDS = 1.0
SILENCE_DB = -80.0
_BATCH = 64


def gaussian_fit(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (float64) of embeddings ``(n, d)``, n ≥ 2."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"need at least 2 embeddings shaped (n, d) to fit a Gaussian, got {embeddings.shape}")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False)


def _clip_round_off(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off (|λ| ≲ n·ε·λ_max, of either sign) set to 0.

    Their square roots would otherwise add ~sqrt(ε) noise per null dimension.
    """
    tolerance = len(eigenvalues) * np.finfo(np.float64).eps * max(float(np.abs(eigenvalues).max()), 0.0)
    return np.where(eigenvalues > tolerance, eigenvalues, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(_clip_round_off(eigenvalues))) @ eigenvectors.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between ``N(mu1, cov1)`` and ``N(mu2, cov2)`` (squared units of the embedding)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched Gaussians: means {mu1.shape}/{mu2.shape}, covariances {cov1.shape}/{cov2.shape}")
    root = _psd_sqrt(cov1)
    middle = root @ cov2 @ root
    trace_sqrt_product = np.sqrt(_clip_round_off(np.linalg.eigvalsh((middle + middle.T) / 2))).sum()
    difference = mu1 - mu2
    distance = difference @ difference + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt_product
    return float(max(distance, 0.0))


def fad_from_embeddings(reference: np.ndarray, generated: np.ndarray) -> float:
    """FAD between two embedding sets ``(n, d)`` and ``(m, d)``."""
    return frechet_distance(*gaussian_fit(reference), *gaussian_fit(generated))


def file_excerpts(path: str | Path, sample_rate: int) -> tuple[np.ndarray, int]:
    """The non-silent 1 s mono excerpts of one file ``(n, sample_rate)`` and the number of silent ones dropped.

    Raises :class:`AudioError` for an unreadable file.
    """
    from orchestrion.audio.io import is_silent, iter_audio_chunks

    length = round(EXCERPT_SECONDS * sample_rate)
    kept, silent = [], 0
    for chunk in iter_audio_chunks(path, EXCERPT_SECONDS, sample_rate=sample_rate, channels=1):
        if chunk.shape[1] < length:
            continue
        if is_silent(chunk, SILENCE_DB):
            silent += 1
        else:
            kept.append(chunk[0])
    return (np.stack(kept) if kept else np.zeros((0, length), np.float32)), silent


@dataclass
class EmbeddedSet:
    """The embeddings of one folder, file by file, with what was skipped."""

    folder: str
    files: list[str] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)  # one (n_i, d) array per file
    silent_excerpts: int = 0
    skipped: SkipReport = field(default_factory=SkipReport)

    @property
    def n_excerpts(self) -> int:
        return sum(len(e) for e in self.embeddings)

    def stacked(self) -> np.ndarray:
        return np.concatenate(self.embeddings)


def embed_folder(folder: str | Path, embedder, *, progress: bool = True) -> EmbeddedSet:
    """Embed every 1 s excerpt of every audio file under ``folder`` (recursive, sorted).

    Unreadable files and files without one non-silent full excerpt are skipped and recorded;
    a folder left with fewer than 2 excerpts raises :class:`DataError`.
    """
    from rich.progress import Progress

    from orchestrion.audio.io import collect_audio_files

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: audio folder not found")
    result = EmbeddedSet(folder=str(folder))
    paths = collect_audio_files(folder)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"embed {folder.name or folder}", total=len(paths))
        for path in paths:
            name = str(path.relative_to(folder))
            try:
                excerpts, silent = file_excerpts(path, embedder.sample_rate)
            except AudioError as error:
                result.skipped.skip(name, str(error).removeprefix(f"{path}: "))
                bar.advance(task)
                continue
            result.silent_excerpts += silent
            if len(excerpts) == 0:
                result.skipped.skip(name, f"no non-silent {EXCERPT_SECONDS:g} s excerpt")
            else:
                batches = [embedder.embed(excerpts[i : i + _BATCH]) for i in range(0, len(excerpts), _BATCH)]
                result.files.append(name)
                result.embeddings.append(np.concatenate(batches).astype(np.float64))
            bar.advance(task)
    result.skipped.require_some(len(result.files), f"audio in {folder}")
    if result.n_excerpts < 2:
        raise DataError(f"{folder}: only {result.n_excerpts} usable 1 s excerpt; FAD needs at least 2 per set")
    return result


def split_half(embedded: EmbeddedSet) -> tuple[np.ndarray, np.ndarray, str]:
    """Two halves of a set and how they were made: alternate files if ≥ 2 files, else excerpt halves."""
    if len(embedded.embeddings) >= 2:
        return np.concatenate(embedded.embeddings[0::2]), np.concatenate(embedded.embeddings[1::2]), "alternate files"
    stacked = embedded.stacked()
    middle = len(stacked) // 2
    return stacked[:middle], stacked[middle:], "first vs second half of the only file's excerpts"


@dataclass
class FADReport:
    """The FAD of a generated set against a reference set, with its scale and provenance."""

    embedder: str
    embedder_description: str
    comparable_with_published: bool
    embedder_config: dict
    embedding_dim: int
    reference_dir: str
    generated_dir: str
    excerpt_seconds: float
    sample_rate: int
    fad: float
    split_half_fad: float | None
    split_half_method: str
    reference_files: int
    generated_files: int
    reference_excerpts: int
    generated_excerpts: int
    silent_excerpts_dropped: int
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically) and return the path."""
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return Path(path)

    def summary(self) -> str:
        """Human-readable lines: the FAD, its scale, set sizes and the embedder caveat."""
        lines = [
            f"FAD ({self.embedder}): {self.fad:.4f}",
            (
                f"split-half FAD of the reference ({self.split_half_method}): {self.split_half_fad:.4f}"
                if self.split_half_fad is not None
                else f"split-half FAD of the reference: not available ({self.split_half_method})"
            ),
            f"reference: {self.reference_files} files, {self.reference_excerpts} excerpts of {self.excerpt_seconds:g} s"
            f" ({self.reference_dir})",
            f"generated: {self.generated_files} files, {self.generated_excerpts} excerpts of {self.excerpt_seconds:g} s"
            f" ({self.generated_dir})",
        ]
        if min(self.reference_excerpts, self.generated_excerpts) <= self.embedding_dim:
            lines.append(
                f"note: a set has no more excerpts than the embedding has dimensions ({self.embedding_dim}): its "
                "covariance is singular and FAD is biased upwards; compare only FADs of equally sized sets"
            )
        if self.silent_excerpts_dropped:
            lines.append(f"silent excerpts dropped: {self.silent_excerpts_dropped}")
        lines.append(f"embedder: {self.embedder_description}")
        return "\n".join(lines)


def evaluate_fad(
    reference_dir: str | Path,
    generated_dir: str | Path,
    *,
    embedder: str = "spectral-stats",
    weights: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
) -> FADReport:
    """FAD of the audio under ``generated_dir`` against ``reference_dir``, plus the reference's split-half FAD.

    ``embedder`` names a registered embedder (:func:`~orchestrion.evaluation.embedders.embedder_names`);
    ``weights`` is the local weight file of a learned one. Bad audio files are skipped and listed
    in ``report.skipped``; a set left without 2 usable excerpts raises :class:`DataError`.
    """
    from orchestrion.config import config_to_dict
    from orchestrion.evaluation.embedders import build_embedder, embedder_info

    info = embedder_info(embedder)
    for folder in (reference_dir, generated_dir):
        if not Path(folder).is_dir():
            raise DataError(f"{folder}: audio folder not found")
    model = build_embedder(embedder, weights, device)
    reference = embed_folder(reference_dir, model, progress=progress)
    generated = embed_folder(generated_dir, model, progress=progress)
    half_a, half_b, method = split_half(reference)
    split_fad = fad_from_embeddings(half_a, half_b) if min(len(half_a), len(half_b)) >= 2 else None
    if split_fad is None:
        method = f"reference too small to split ({reference.n_excerpts} excerpts)"
    skipped = [{"set": "reference", **s} for s in reference.skipped.skipped]
    skipped += [{"set": "generated", **s} for s in generated.skipped.skipped]
    return FADReport(
        embedder=info.name,
        embedder_description=info.description,
        comparable_with_published=info.comparable_with_published,
        embedder_config=config_to_dict(model.config),
        embedding_dim=reference.embeddings[0].shape[1],
        reference_dir=str(reference_dir),
        generated_dir=str(generated_dir),
        excerpt_seconds=EXCERPT_SECONDS,
        sample_rate=model.sample_rate,
        fad=fad_from_embeddings(reference.stacked(), generated.stacked()),
        split_half_fad=split_fad,
        split_half_method=method,
        reference_files=len(reference.files),
        generated_files=len(generated.files),
        reference_excerpts=reference.n_excerpts,
        generated_excerpts=generated.n_excerpts,
        silent_excerpts_dropped=reference.silent_excerpts + generated.silent_excerpts,
        skipped=skipped,
    )

