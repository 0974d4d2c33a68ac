"""Held-out measures of a SymphonyNet model (spec §8): bits per field and instrument accuracy.

Used by training (validation at every checkpoint) and by ``orchestrion evaluate symphony`` (the
run's test or validation pieces, or any token dataset).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from orchestrion.errors import DataError
from orchestrion.fileio import read_json
from orchestrion.symbolic.dataset import TokenDataset
from orchestrion.symbolic.mmr_vocab import INSTRUMENT_OFFSET, PAD
from orchestrion.symphony.config import FIELDS
from orchestrion.symphony.data import EvalWindow, collate_windows, eval_windows
from orchestrion.symphony.model import SymphonyModel
from orchestrion.symphony.models import SPLIT_FILE, load_symphony

SPLITS = ("test", "valid", "train", "all")


def field_nll(logits: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per field: (NLL summed over non-PAD targets [nats], number of those targets).

    ``logits``: ``{field: (B, T, V)}``; ``target``: (B, T, 4) long, PAD = ignored.
    """
    out = {}
    for column, field in enumerate(FIELDS):
        tgt = target[..., column].reshape(-1)
        nll = F.cross_entropy(logits[field].float().reshape(tgt.numel(), -1), tgt, ignore_index=PAD, reduction="sum")
        out[field] = (nll, (tgt != PAD).sum())
    return out



@torch.no_grad()
def evaluate(model: SymphonyModel, windows: list[EvalWindow], *, batch_size: int, device: torch.device) -> dict:
    """Bits per field over the scored rows of ``windows`` and per-track instrument accuracy.

    Returns ``{"event_bits", "duration_bits", "track_bits", "instrument_bits", "instrument_accuracy",
    "tracks"}``; accuracy compares, for every (piece, track), the argmax of the instrument logits
    averaged over its notes with its true instrument.
    """
    was_training = model.training
    model.eval()
    sums = {field: 0.0 for field in FIELDS}
    counts = {field: 0 for field in FIELDS}
    track_logits: dict[tuple[int, int], torch.Tensor] = {}
    track_truth: dict[tuple[int, int], int] = {}
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        batch = collate_windows([w.rows for w in chunk])
        target = batch["target"].clone()
        for b, window in enumerate(chunk):
            target[b, : max(window.score_from, 0)] = PAD
        logits = model(batch["source"].to(device))
        for field, (nll, count) in field_nll(logits, target.to(device)).items():
            sums[field] += float(nll)
            counts[field] += int(count)
        instrument = logits["instrument"].float().cpu()
        for b, window in enumerate(chunk):
            ins = target[b, : len(window.rows), 3].numpy()
            notes = np.flatnonzero(ins >= INSTRUMENT_OFFSET)
            for track in np.unique(window.tracks[notes]):
                rows = notes[window.tracks[notes] == track]
                key = (window.piece, int(track))
                track_logits[key] = track_logits.get(key, 0) + instrument[b, rows].sum(0)
                track_truth[key] = int(ins[rows[0]])
    model.train(was_training)
    metrics = {f"{field}_bits": sums[field] / max(counts[field], 1) / math.log(2) for field in FIELDS}
    correct = [int(track_logits[key].argmax()) == truth for key, truth in track_truth.items()]
    metrics["instrument_accuracy"] = float(np.mean(correct)) if correct else float("nan")
    metrics["tracks"] = len(correct)
    return metrics



def evaluate_run(
    run_dir: str | Path, data_dir: str | Path | None = None, *, split: str = "test", batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> dict:
    """Evaluate a trained run on a part of its recorded split (or every piece of ``data_dir``).

    ``data_dir`` defaults to the dataset the run was trained on (``split.json``); ``split`` is
    ``test``, ``valid``, ``train`` or ``all``. Windows are the model's training window. Returns
    :func:`evaluate`'s metrics plus ``pieces`` and ``split``.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {list(SPLITS)}")
    trained = load_symphony(run_dir, device)
    record = read_json(Path(run_dir) / SPLIT_FILE, "run split record", DataError) if split != "all" else {}
    dataset = TokenDataset(data_dir if data_dir is not None else record.get("data_dir", ""))
    if dataset.event_vocab_size != trained.config.event_vocab_size:
        raise DataError(f"{dataset.data_dir}: {dataset.event_vocab_size} event ids, the model of {run_dir} has "
                        f"{trained.config.event_vocab_size} (another tokenization)")
    if split == "all":
        pieces = tuple(range(len(dataset)))
    else:
        if record.get("pieces") != len(dataset):
            raise DataError(f"{dataset.data_dir}: has {len(dataset)} pieces, {run_dir} was split over "
                            f"{record.get('pieces')}; use --split all for another dataset")
        pieces = tuple(record[split])
    if not pieces:
        raise DataError(f"{run_dir}: the {split} split holds no piece")
    windows = eval_windows(dataset, pieces, window=trained.config.window, seed=trained.training.split_seed)
    metrics = evaluate(trained.model, windows, batch_size=batch_size, device=torch.device(device))
    return {**metrics, "pieces": len(pieces), "split": split}
