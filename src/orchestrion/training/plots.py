"""Loss curves as pictures: people read a curve faster than a log."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrion.fileio import atomic_path


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl`` file, skipping a line cut short by a kill."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_loss_curves(metrics_path: str | Path, out_png: str | Path, max_panels: int = 8) -> Path | None:
    """Plot every numeric metric against the step, one panel each; atomic PNG write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    keys = [k for k in records[0] if k not in ("step", "time")] if records else []
    keys = [k for k in keys if all(isinstance(r.get(k), (int, float)) for r in records)][:max_panels]
    if not keys:
        return None
    cols = min(len(keys), 4)
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    steps = [r["step"] for r in records]
    for ax, key in zip(axes.flat, keys, strict=False):
        ax.plot(steps, [r[key] for r in records], lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return Path(out_png)
