"""Export the default-model runs into the package with their MODEL_CARD.md (last step of train_default_models.sh).

    python scripts/model_cards.py --work runs/default-models --out src/orchestrion/models \
        [--evaluation docs/evaluation.json]

Every number in a card is read from the runs (configs, metrics.jsonl, manifests) or from the
evaluation report's JSON, never typed in; the cards say how to reproduce the models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from orchestrion.checkpoint import load_checkpoint
from orchestrion.pretrained import BUNDLED, MODEL_CARD, export_model
from orchestrion.symbolic.mmr_vocab import BASE_EVENT_VOCAB_SIZE
from orchestrion.system import cpu_description

RECIPE = "bash scripts/train_default_models.sh"


def _metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _training_summary(run: Path) -> dict:
    """Steps, wall time and the last logged values of a run (the trainer logs cumulative seconds as 'time')."""
    rows = _metrics(run)
    timed = [r for r in rows if "time" in r]
    last = {k: v for r in timed[-5:] for k, v in r.items() if k not in ("step", "time")}
    seconds, previous = 0.0, 0.0
    for row in timed:  # a resumed run starts its clock again: add up the sessions
        if row["time"] < previous:
            seconds += previous
        previous = row["time"]
    return {"steps": max(r["step"] for r in rows), "seconds": seconds + previous if timed else None, "last": last}


def _fmt_time(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds / 60:.0f} min"


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _evaluation_section(evaluation: dict | None, key: str) -> str:
    source = "`docs/evaluation.md` (written by `python scripts/evaluation_report.py`)"
    if not evaluation or key not in evaluation:
        return f"See {source}."
    return evaluation[key]["markdown"] + f"\n\nFrom {source}."


def density_response(gan_run: Path) -> str:
    """How the output's onsets per second (madmom, the detector that made the training curves) follow the
    requested note density: ``orchestrion evaluate density`` with its defaults (3 seeds × 20 s, fp32)."""
    from orchestrion.evaluation.conditioning import note_density_response
    from orchestrion.musika.models import load_latent_gan

    response = note_density_response(load_latent_gan(gan_run))
    verdict = "rises with" if response.spearman() == 1.0 else "does not follow"
    return f"Its output {verdict} the requested note density: {response.summary()}."


def musika_card(work: Path, evaluation: dict | None, exported: Path) -> str:
    stages = [("level 1, phase 1", "l1p1"), ("level 1, phase 2", "l1p2"), ("level 2, phase 1", "l2p1"),
              ("latent GAN", "gan")]
    rows, total = [], 0.0
    for label, name in stages:
        summary = _training_summary(work / name)
        last = ", ".join(f"{k} {v:.4g}" for k, v in sorted(summary["last"].items()) if isinstance(v, float))
        rows.append((label, f"`{name}`", str(summary["steps"]), _fmt_time(summary["seconds"]), last))
        total += summary["seconds"] or 0.0
    gan = load_checkpoint(work / "gan").config
    latents = json.loads((work / "latents" / "manifest.json").read_text())
    train_files = len(list((work / "train").iterdir()))
    heldout_files = len(list((work / "heldout").iterdir()))
    gan_files = len(os.listdir(work / "gan_audio"))
    return f"""# musika-default

A small Musika model: a two-level spectrogram autoencoder (`small` presets) and a latent GAN
(`small` preset, conditional on {", ".join(gan.gan.conditions)}), trained on a CPU from audio the
package can make itself. It is a starter that shows the pipeline end to end, not a model of
real recorded music: train your own on your audio (see `docs/guide-musika.md`).

## Data
The built-in corpora `bach-chorales` (365 chorales, choir) and `string-quartets` (46 movements)
rendered at 22.05 kHz stereo with the default soundfont (`orchestrion corpus render`); every 10th
file held out: {train_files} training files, {heldout_files} held out. The GAN was trained on
{len(latents["chunks"])} latent chunks of {latents["chunk_frames"]} level-2 frames from {gan_files} renders of every 4th
training chorale with all parts on strings (2 of 3) or organ (1 of 3), each at a random tempo of
40-200 BPM (`scripts/tempo_variants.py`), so that note density spans a wide range.

## Training
{_table(rows, ("stage", "run", "steps", "wall time", "last logged values"))}

Total {total / 3600:.1f} h of training on 1 thread each of {cpu_description()[0]} (2 cores shared
with other jobs). Exact commands, batch sizes and learning rates: `{RECIPE}` (the Musika chain).

## Evaluation
{_evaluation_section(evaluation, "musika")}

## Known limitations
{density_response(exported)} The level-1 phase-2 run used `--lambda-rec 20` (see
`docs/guide-musika.md`); its learned phase scores below exact magnitude + random phase on held-out
audio, so the output is noisy: strings- and organ-like textures without clean notes.

## Files
Weights-only checkpoint made by `orchestrion export` (decoders and generator stored as float16,
encoders float32); `manifest.json` holds the sha256 of every file and is checked on load.

## Licence
Weights: MIT, like the code. Training audio was rendered from music21 corpus encodings (BSD-3-Clause;
its corpus licence asks for the encoders' permission, some encodings are non-commercial) with
Tim Brechbill's TimGM6mb soundfont (GPL-2 as distributed by Debian). The conditioning curves were
computed with madmom's detector models (CC BY-NC-SA 4.0). Check these terms before commercial use.
"""


def symphony_card(work: Path, evaluation: dict | None) -> str:
    run = work / "symphony"
    ckpt = load_checkpoint(run)
    config = ckpt.config
    summary = _training_summary(run)
    valid = [r for r in _metrics(run) if "valid_event_bits" in r]
    last_valid = valid[-1] if valid else {}
    split = json.loads((run / "split.json").read_text())
    counts = {name: len(split.get(name, [])) for name in ("train", "valid", "test")}
    parameters = sum(t.numel() for t in ckpt.module_state("model").values())
    rows = [(k.removeprefix("valid_").replace("_", " "), f"{v:.3f}") for k, v in sorted(last_valid.items())
            if k != "step"]
    return f"""# symphony-default

SymphonyNet `small` (d {config.model.d_model}, {config.model.n_layers} layers, {config.model.n_heads} heads,
{parameters:,} parameters) on MMR tokens with {config.model.event_vocab_size - BASE_EVENT_VOCAB_SIZE} Music BPE merges
(`music_bpe.json`), trained on a CPU. A starter: it knows chorales and string quartets only.

## Data
The built-in MIDI corpora `bach-chorales` (365), `string-quartets` (46) and `demo` (5), tokenized by
`orchestrion symphony tokenize --learn-bpe 300`; seeded split by piece: {counts["train"]} train /
{counts["valid"]} validation / {counts["test"]} test (`split.json`).

## Training
{summary["steps"]} updates of {config.batch_size} windows of up to {config.model.window} steps (lr
{config.learning_rate:g}, {config.warmup_steps} warm-up), {_fmt_time(summary["seconds"])} on 1 thread of
{cpu_description()[0]} (2 cores shared with other jobs). Exact commands: `{RECIPE}` (the SymphonyNet run).

Validation at step {last_valid.get("step", "?")}:

{_table(rows, ("metric", "value"))}

## Evaluation
{_evaluation_section(evaluation, "symphony")}

## Files
Weights-only checkpoint made by `orchestrion export` (float16 weights); `manifest.json` holds the
sha256 of every file (weights, config, Music BPE, split) and is checked on load.

## Licence
Weights: MIT, like the code. Training data: music21 corpus encodings (BSD-3-Clause; its corpus
licence asks for the encoders' permission, some encodings are non-commercial).
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="WORK_DIR of train_default_models.sh")
    parser.add_argument("--out", type=Path, required=True, help="folder of the bundled models")
    parser.add_argument("--evaluation", type=Path, help="docs/evaluation.json, to put its numbers in the cards")
    args = parser.parse_args()
    evaluation = json.loads(args.evaluation.read_text()) if args.evaluation and args.evaluation.is_file() else None
    cards = {
        "musika-default": (args.work / "gan", lambda exported: musika_card(args.work, evaluation, exported)),
        "symphony-default": (args.work / "symphony", lambda _exported: symphony_card(args.work, evaluation)),
    }
    for name, (run, make_card) in cards.items():
        assert name in BUNDLED
        with tempfile.TemporaryDirectory() as scratch:
            # the card measures what users get: the exported (float16) model, not the run
            exported = export_model(run, Path(scratch) / name, half=True)
            card = Path(scratch) / MODEL_CARD
            card.write_text(make_card(exported))
            written = export_model(run, args.out / name, half=True, card=card)
        size = sum(f.stat().st_size for f in written.iterdir()) / 1e6
        print(f"{written}: {size:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
