r"""Write docs/evaluation.md, docs/evaluation.json and docs/images/evaluation/*.png: every model next to baselines.

    python scripts/evaluation_report.py --train-audio runs/default-models/train \
        --heldout-audio runs/default-models/heldout --midi runs/default-models/midi \
        --musika-model runs/default-models/gan --symphony-model runs/default-models/symphony \
        --autoencoders l1p1=runs/orchestral/l1p1,l1p2=runs/orchestral/l1p2,l2p1=runs/orchestral/l2p1 \
        --ae-train-audio runs/orchestral/train --ae-heldout-audio runs/orchestral/heldout \
        --ood-audio runs/orchestral/ood

A model left out is the bundled one (orchestrion.pretrained); a section whose inputs are missing is
left out with a line saying why. The autoencoder study reads --ae-train-audio and --ae-heldout-audio
(its runs' training audio and audio kept from them; default: --train-audio and --heldout-audio, the
FAD section's folders), so autoencoders trained on other music than the latent GAN are judged on
their own data. The files are written by this script only, never by hand; the sections are computed
by orchestrion.evaluation.report.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from orchestrion.errors import CheckpointError, OrchestrionError

console = Console(stderr=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _named_runs(text: str) -> dict[str, Path]:
    runs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise argparse.ArgumentTypeError(f"expected NAME=RUN[,NAME=RUN...], got {item!r}")
        if name in runs:
            raise argparse.ArgumentTypeError(f"run name {name!r} given twice")
        runs[name] = Path(path)
    if not runs:
        raise argparse.ArgumentTypeError("no NAME=RUN given")
    return runs


def _densities(text: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(","))
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"note densities are values in 0..1, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = p.add_argument_group("models (default: the bundled model of the family)")
    models.add_argument("--musika-model", type=Path, help="latent-GAN run (or checkpoint) for the FAD section")
    models.add_argument("--autoencoders", type=_named_runs, metavar="NAME=RUN,...",
                        help="autoencoder runs to compare, e.g. l1p1=runs/l1p1,l1p2=runs/l1p2 "
                             "(default: the bundled Musika model's autoencoder)")
    models.add_argument("--symphony-model", type=Path, help="SymphonyNet run (with its split.json)")
    data = p.add_argument_group("data")
    data.add_argument("--train-audio", type=Path, help="training audio folder (real-vs-real FAD, latent statistics; "
                                                        "the autoencoder study's unless --ae-train-audio)")
    data.add_argument("--heldout-audio", type=Path, help="held-out audio folder (the FAD reference; the autoencoder "
                                                          "study's unless --ae-heldout-audio)")
    data.add_argument("--ae-train-audio", type=Path, help="training audio of the autoencoder study: excerpts and "
                                                           "the linear frame code's fit (default: --train-audio)")
    data.add_argument("--ae-heldout-audio", type=Path, help="held-out audio of the autoencoder study "
                                                             "(default: --heldout-audio)")
    data.add_argument("--ood-audio", type=Path, help="out-of-domain audio folder for the autoencoder study")
    data.add_argument("--midi", type=Path, help="folder the SymphonyNet run's pieces were tokenized from")
    data.add_argument("--embedder", default="spectral-stats",
                      help="FAD embedder (default spectral-stats, offline; vggish needs --weights)")
    data.add_argument("--weights", type=Path, help="local weight file of a learned FAD embedder (VGGish)")
    sizes = p.add_argument_group("sizes")
    sizes.add_argument("--clips", type=_positive_int, default=32, help="generated clips per set (default 32)")
    sizes.add_argument("--clip-seconds", type=_positive_float, default=10.0, help="seconds per clip (default 10)")
    sizes.add_argument("--densities", type=_densities, default=(0.25, 0.5, 0.75),
                       help="note-density values of a conditional GAN (default 0.25,0.5,0.75)")
    sizes.add_argument("--files", type=_positive_int, default=4, help="audio files per folder for the "
                                                                       "autoencoder study (default 4)")
    sizes.add_argument("--excerpt-seconds", type=_positive_float, default=20.0,
                       help="seconds per autoencoder excerpt (default 20)")
    sizes.add_argument("--pieces", type=_positive_int, default=16, help="generated pieces per set (default 16)")
    sizes.add_argument("--bars", type=_positive_int, default=16, help="bars per piece (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--out", type=Path, default=Path("docs"), help="report folder (default docs/)")
    p.add_argument("--scratch", type=Path, help="keep the clips, excerpts and pieces here (default: a "
                                                "temporary folder, removed at the end)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    return p


def _bundled(family: str) -> tuple[Path | None, str]:
    """The bundled model of ``family``, or None and why not."""
    from orchestrion.pretrained import BUNDLED, default_model_dir

    try:
        return default_model_dir(family), ""
    except CheckpointError:
        path = next(model.path for model in BUNDLED.values() if model.family == family)
        return None, f"no bundled {family} model in this install ({path} is missing)"


def build_report(args: argparse.Namespace, argv: list[str], scratch: Path):
    """Run every section whose inputs are there; returns the :class:`~orchestrion.evaluation.report.Report`."""
    import torch

    from orchestrion.evaluation.report import (
        Report,
        autoencoder_section,
        musika_section,
        symbolic_section,
    )
    from orchestrion.system import cpu_description

    images = args.out / "images" / "evaluation"
    report = Report(
        command="python scripts/evaluation_report.py " + shlex.join(argv),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{cpu_description()[0]}, {os.cpu_count()} cores, torch {torch.__version__} "
                f"with {torch.get_num_threads()} threads",
    )

    def log(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")

    musika_model, why = (args.musika_model, "") if args.musika_model else _bundled("musika")
    title = "Musika: generated audio (FAD)"
    if musika_model is None:
        report.left_out[title] = f"no --musika-model given and {why}"
    elif not (args.train_audio and args.heldout_audio):
        report.left_out[title] = "needs --train-audio and --heldout-audio"
    else:
        report.sections.append(musika_section(
            musika_model, args.train_audio, args.heldout_audio, scratch=scratch, images=images, clips=args.clips,
            clip_seconds=args.clip_seconds, densities=args.densities, seed=args.seed, embedder=args.embedder,
            weights=args.weights, log=log))

    title = "Musika autoencoders: reconstruction quality"
    # by default the autoencoder of the latent GAN (given or bundled) is studied
    runs = args.autoencoders or ({musika_model.name: musika_model} if musika_model is not None else None)
    folders = {label: folder for label, folder in
               (("training", args.ae_train_audio or args.train_audio),
                ("held-out", args.ae_heldout_audio or args.heldout_audio), ("out-of-domain", args.ood_audio))
               if folder is not None}
    if not runs:
        report.left_out[title] = "no --autoencoders, no --musika-model and no bundled Musika model"
    elif not folders:
        report.left_out[title] = ("needs at least one of --ae-train-audio, --ae-heldout-audio (or --train-audio, "
                                  "--heldout-audio), --ood-audio")
    else:
        report.sections.append(autoencoder_section(
            runs, folders, scratch=scratch, images=images, files=args.files, excerpt_seconds=args.excerpt_seconds,
            log=log))

    symphony_model, why = (args.symphony_model, "") if args.symphony_model else _bundled("symphony")
    title = "SymphonyNet: generated pieces"
    if symphony_model is None:
        report.left_out[title] = f"no --symphony-model given and {why}"
    elif args.midi is None:
        report.left_out[title] = "needs --midi (the folder the run's pieces came from)"
    else:
        report.sections.append(symbolic_section(
            symphony_model, args.midi, scratch=scratch, images=images, pieces=args.pieces, bars=args.bars,
            seed=args.seed, log=log))
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse, check the outputs before the work, run, write. Returns the exit status (2 for a user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    from orchestrion.evaluation.report import report_outputs
    from orchestrion.fileio import check_output_path

    try:
        for path in report_outputs(args.out):
            check_output_path(path, overwrite=args.overwrite)
        if args.scratch is not None and args.scratch.exists() and (
            not args.scratch.is_dir() or any(args.scratch.iterdir())
        ):  # clips left from another run would join the sets
            raise OrchestrionError(f"{args.scratch}: --scratch must be a new or empty folder")
        with tempfile.TemporaryDirectory(prefix="evaluation-") as temporary:
            scratch = args.scratch if args.scratch is not None else Path(temporary)
            report = build_report(args, argv, scratch)
            markdown, json_path = report.write(args.out / "evaluation.md", args.out / "evaluation.json")
    except OrchestrionError as error:
        console.print(f"[red]error: {error}[/]", highlight=False, soft_wrap=True)
        return 2
    console.print(f"wrote {markdown} and {json_path}")
    for title, reason in report.left_out.items():
        console.print(f"[yellow]left out {title}: {reason}[/]", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
