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
    numeric = [k for r in records for k, v in r.items() if k not in ("step", "time") and isinstance(v, (int, float))]
    seen = list(dict.fromkeys(numeric))
    # "valid_<key>" shares the panel of "<key>" (held-out next to training); lines may hold a subset of keys
    keys = [k for k in seen if not (k.startswith("valid_") and k.removeprefix("valid_") in seen)][:max_panels]
    if not keys:
        return None
    cols = min(len(keys), 4)
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        paired = f"valid_{key}" in seen
        for name, label in ((key, "train"), (f"valid_{key}", "valid")) if paired else ((key, None),):
            points = [(r["step"], r[name]) for r in records if isinstance(r.get(name), (int, float))]
            ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2, label=label,
                    marker="o" if name != key else None, ms=3)
        if paired:
            ax.legend(fontsize=8)
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
