"""``orchestrion symphony``: MMR tokens, Music BPE and token datasets from the command line.

Every command is a thin wrapper over :mod:`orchestrion.symbolic`; heavy imports happen inside
the commands so that ``orchestrion --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from orchestrion.errors import DataError
from orchestrion.fileio import atomic_path, check_output_path

if TYPE_CHECKING:
    import numpy as np
    import symusic

    from orchestrion.symbolic.music_bpe import MusicBPE

console = Console()

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="rich",
    help=(
        "SymphonyNet-style symbolic music: MMR tokens, Music BPE, token datasets.\n\n"
        "An existing output file is never replaced unless the command is given --overwrite, and an "
        "output may never be one of the command's inputs.\n\n"
        "Examples:\n\n"
        "  orchestrion symphony tokenize midis/ --out data/ --learn-bpe 700 -j 2\n\n"
        "  orchestrion symphony stats data/\n\n"
        "  orchestrion symphony roundtrip in.mid out.mid --data data/"
    ),
)

MAX_BINS = 200

OVERWRITE_HELP = "Replace the output file if it exists (never allowed when it is an input)."

SPARSE_MERGE_HELP = (
    "Merge each track of fewer than 50 notes into the first big track of the same instrument; one with no such "
    "track is kept if it has more than 5 notes, else dropped (SymphonyNet's rule for training corpora)."
)

TOKENS_HELP = (
    "Token file: .npy int array (steps, 4) [event, duration, track, instrument], or .txt of MMR strings "
    "(4 per step, e.g. 'E5 r8 t0 xE'), or a dataset folder together with --piece."
)


def _load_bpe(bpe: Path | None, data: Path | None) -> MusicBPE | None:
    """The merges named by --bpe, or those a dataset (--data) was made with."""
    from orchestrion.symbolic.dataset import TokenDataset
    from orchestrion.symbolic.music_bpe import MusicBPE

    if bpe is not None and data is not None:
        raise DataError("give either --bpe or --data, not both")
    if bpe is not None:
        return MusicBPE.load(bpe)
    if data is not None:
        return TokenDataset(data).bpe
    return None


def _read_tokens(
    source: Path, bpe: MusicBPE | None, piece: int | None
) -> tuple[np.ndarray, MusicBPE | None, str]:
    """Tokens from a token file, or piece ``piece`` of a dataset folder (whose merges then apply).

    Also returns what the tokens are, for titles and messages: the token file, or the dataset
    piece's source MIDI file.
    """
    from orchestrion.symbolic.dataset import TokenDataset, load_token_file

    if piece is not None and piece < 0:
        raise DataError(f"--piece must be 0 or more (pieces are numbered from 0), got {piece}")
    if source.is_dir():
        if piece is None:
            raise DataError(f"{source}: a dataset folder needs --piece INDEX")
        dataset = TokenDataset(source)
        if piece >= len(dataset):
            raise DataError(f"{source}: --piece {piece} is out of range, the dataset has {len(dataset)} pieces"
                            f" (0-{len(dataset) - 1})")
        label = f"{dataset.meta(piece)['source']} (piece {piece} of {source})"
        return dataset.piece(piece).astype("int32"), bpe if bpe is not None else dataset.bpe, label
    if piece is not None:
        raise DataError("--piece only applies to a dataset folder")
    return load_token_file(source, bpe), bpe, str(source)


def _to_score(tokens: np.ndarray, bpe: MusicBPE | None, label: str) -> symusic.Score:
    """Check the ids, expand Music BPE tokens if present, then decode MMR to a score with notes."""
    from orchestrion.symbolic import mmr
    from orchestrion.symbolic.dataset import check_token_ids
    from orchestrion.symbolic.mmr_vocab import BASE_EVENT_VOCAB_SIZE

    if len(tokens) and (tokens[:, 0] >= BASE_EVENT_VOCAB_SIZE).any() and bpe is None:
        raise DataError(f"{label}: holds Music BPE tokens; name the merges with --bpe FILE or --data DIR")
    check_token_ids(tokens, label, bpe.vocab_size if bpe is not None else BASE_EVENT_VOCAB_SIZE)
    if bpe is not None:
        tokens = bpe.decode(tokens)
    score = mmr.decode(tokens)
    if score.note_num() == 0:
        raise DataError(f"{label}: the {len(tokens):,} token steps hold no playable note (a note needs a"
                        " position, a duration and a track before it); nothing written")
    return score


@app.command()
def tokenize(
    midi_dir: Path = typer.Argument(..., help="Folder searched recursively for .mid/.midi files."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to create (or an unfinished one to resume)."),
    bpe: Path | None = typer.Option(None, "--bpe", help="Apply these Music BPE merges (JSON from learn-bpe)."),
    learn_bpe: int | None = typer.Option(None, "--learn-bpe", help="Learn N merges on this corpus, then apply them."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes (1 = in-process)."),
    shard_files: int = typer.Option(64, "--shard-files", help="Input files per shard (unit of work and restart)."),
    sparse_merge: bool = typer.Option(True, "--sparse-merge/--no-sparse-merge", help=SPARSE_MERGE_HELP),
    tempo_tokens: bool = typer.Option(True, "--tempo-tokens/--no-tempo-tokens",
                                      help="Put a tempo step after the chord where the tempo changes "
                                           "(--no-tempo-tokens: exactly the reference grammar)."),
) -> None:
    """Encode a MIDI folder (or one MIDI file) into a sharded, memory-mappable MMR / Music BPE token dataset.

    Bad files are skipped and listed in DATA_DIR/report.jsonl. An interrupted run resumes when
    the same command is run again: finished shards are not redone. --out must be a new or empty
    folder (or the folder of that interrupted run).

    Example:

      orchestrion symphony tokenize midis/ --out data/ --learn-bpe 700 -j 2
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from orchestrion.symbolic.preprocess import TokenizeOptions, tokenize_corpus

    options = TokenizeOptions(shard_files=shard_files, merge_sparse_tracks=sparse_merge, tempo_tokens=tempo_tokens)
    with Progress(TextColumn("tokenizing"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("files", total=None)
        manifest = tokenize_corpus(
            midi_dir, out, bpe=bpe, learn_bpe=learn_bpe, workers=workers, options=options,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    counts = manifest["counts"]
    table = Table(title=f"dataset {out}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key in ("files_seen", "files_ok", "files_failed", "pieces", "steps", "notes"):
        table.add_row(key.replace("_", " "), f"{counts[key]:,}")
    if manifest["bpe"] is not None:
        table.add_row("Music BPE merges", str(manifest["bpe"]["n_merges"]))
        table.add_row("steps after / before BPE", f"{counts['compression']:.4f}")
    console.print(table)
    if learn_bpe is not None and manifest["bpe"]["n_merges"] < learn_bpe:
        from orchestrion.symbolic.dataset import TokenDataset

        console.print(f"[yellow]Music BPE: {TokenDataset(out).bpe.merge_shortfall(learn_bpe)}[/]")
    if counts["files_failed"]:
        console.print(f"[yellow]{counts['files_failed']} file(s) skipped, reasons in {out / 'report.jsonl'}[/]")


@app.command("learn-bpe")
def learn_bpe_command(
    source: Path = typer.Argument(..., help="A token dataset folder (plain MMR, or made with --learn-bpe) "
                                            "or a folder of MIDI files."),
    merges: int = typer.Option(..., "--merges", "-n", help="Number of merges to learn (reference: 700)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output JSON file."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes for counting."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Learn Music BPE merges (chord tokens) from a corpus and save them as JSON.

    Learning stops early, and says so, when every note group of the corpus has become one token.

    Example:

      orchestrion symphony learn-bpe midis/ --merges 700 --out music_bpe.json
    """
    from orchestrion.symbolic.dataset import MANIFEST
    from orchestrion.symbolic.music_bpe import MusicBPE
    from orchestrion.symbolic.preprocess import MMR_SUBDIR, check_workers, count_dataset_words, count_midi_words

    if merges <= 0:
        raise DataError(f"--merges must be positive, got {merges}")
    check_workers(workers)
    check_output_path(out, overwrite=overwrite, inputs=[source])
    if (source / MANIFEST).is_file():
        mmr_dir = source / MMR_SUBDIR if (source / MMR_SUBDIR / MANIFEST).is_file() else source
        table = count_dataset_words(mmr_dir, workers)
    else:
        with console.status("encoding MIDI files and counting note groups"):
            table, skipped = count_midi_words(source, workers)
        for entry in skipped.skipped:
            console.print(f"[yellow]skipped {entry['file']}: {entry['reason']}[/]", highlight=False)
    with console.status(f"learning {merges} merges from {len(table.counts):,} distinct note groups"):
        bpe = MusicBPE().learn(table, merges)
    bpe.save(out)
    names = bpe.event_names()
    shown = Table(title=f"{bpe.n_merges} merges → {out} (first 10)")
    for column in ("#", "token", "count"):
        shown.add_column(column, justify="right" if column != "token" else "left")
    for k, merge in enumerate(bpe.merges[:10]):
        shown.add_row(str(k), names[bpe.base_event_vocab_size + k], f"{merge.count:,}")
    console.print(shown)
    shortfall = bpe.merge_shortfall(merges)
    if shortfall:
        console.print(f"[yellow]{shortfall}[/]")


@app.command()
def detokenize(
    tokens: Path = typer.Argument(..., help=TOKENS_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="MIDI file to write."),
    bpe: Path | None = typer.Option(None, "--bpe", help="Music BPE merges the tokens use."),
    data: Path | None = typer.Option(None, "--data", help="Dataset whose merges the tokens use."),
    piece: int | None = typer.Option(None, "--piece", help="Piece index (from 0) when TOKENS is a dataset folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Turn MMR / Music BPE tokens back into a MIDI file (480 ticks per quarter, velocity 90).

    Example:

      orchestrion symphony detokenize data/ --piece 0 --out piece0.mid
    """
    from orchestrion.symbolic.midi import save_midi

    check_output_path(out, overwrite=overwrite, inputs=[tokens])
    array, merges, label = _read_tokens(tokens, _load_bpe(bpe, data), piece)
    score = _to_score(array, merges, label)
    save_midi(score, out)
    console.print(f"wrote {out}: {score.note_num():,} notes, {len(score.tracks)} tracks")


@app.command()
def roundtrip(
    midi_in: Path = typer.Argument(..., help="Input MIDI file."),
    midi_out: Path = typer.Argument(..., help="Output MIDI file: what the representation keeps."),
    bpe: Path | None = typer.Option(None, "--bpe", help="Also pass through these Music BPE merges."),
    data: Path | None = typer.Option(None, "--data", help="Encode as this dataset was made and pass through its "
                                                          "merges."),
    tokens_out: Path | None = typer.Option(None, "--tokens", help="Also save the (BPE) tokens (.npy or .txt)."),
    sparse_merge: bool | None = typer.Option(
        None, "--sparse-merge/--no-sparse-merge",
        help="Apply the sparse-track merge of training corpora. Default: as the --data dataset was made, else off."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """MIDI → MMR → Music BPE → MMR → MIDI, printing how faithful each stage is.

    With --data, the file is encoded with that dataset's options and merges, so the output is
    what the dataset holds of it.

    Example:

      orchestrion symphony roundtrip in.mid out.mid --data data/
    """
    import numpy as np

    from orchestrion.symbolic import mmr
    from orchestrion.symbolic.dataset import save_token_file
    from orchestrion.symbolic.midi import load_midi, save_midi
    from orchestrion.symbolic.preprocess import dataset_options, encoder_config

    check_output_path(midi_out, overwrite=overwrite, inputs=[midi_in])
    if tokens_out is not None:
        check_output_path(tokens_out, overwrite=overwrite, inputs=[midi_in, midi_out])
        if tokens_out.suffix not in (".npy", ".txt"):
            raise DataError(f"{tokens_out}: token files must end in .npy or .txt")
    merges = _load_bpe(bpe, data)
    options = dataset_options(data) if data is not None else None
    if sparse_merge is None:
        sparse_merge = options.merge_sparse_tracks if options is not None else False
    config = encoder_config(options) if options is not None else mmr.MMRConfig()
    score = load_midi(midi_in)
    piece = mmr.encode(midi_in, merge_sparse_tracks=sparse_merge, config=config)  # from the path: errors name it
    tokens = piece.tokens
    merged = merges.apply(tokens) if merges is not None else tokens
    restored = merges.decode(merged) if merges is not None else tokens
    if tokens_out is not None:
        save_token_file(tokens_out, merged, merges)
    back = mmr.decode(restored)
    save_midi(back, midi_out)
    fidelity = mmr.fidelity(score, merge_sparse_tracks=sparse_merge, config=config)
    reencoded = mmr.encode(back, merge_sparse_tracks=False, config=config).tokens

    table = Table(title=f"{midi_in.name} → {midi_out}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("sparse-track merge", "on" if sparse_merge else "off")
    table.add_row("notes in the MIDI file", f"{piece.n_notes_in:,}")
    table.add_row("notes kept by MMR", f"{piece.n_source_notes_kept:,}")
    for reason, count in sorted(piece.dropped.items()):
        table.add_row(f"  dropped: {reason}", f"{count:,}")
    table.add_row("note steps (notes over 4 beats are cut)", f"{piece.n_notes_kept:,} (+{piece.n_split_added:,} cut)")
    table.add_row("notes back exactly (pitch, program, onset, duration)",
                  f"{fidelity.notes_exact:,} ({fidelity.exact_fraction:.1%})")
    table.add_row("MMR steps", f"{len(tokens):,}")
    if merges is not None:
        table.add_row(f"Music BPE steps ({merges.n_merges} merges)",
                      f"{len(merged):,} ({len(merged) / len(tokens):.3f})")
        table.add_row("BPE decode == MMR tokens", "yes" if np.array_equal(restored, tokens) else "NO")
    table.add_row("re-encoding the output gives the same tokens",
                  "yes" if np.array_equal(reencoded, tokens) else "no")
    console.print(table)


@app.command()
def stats(
    data_dir: Path = typer.Argument(..., help="Token dataset folder."),
    png: Path | None = typer.Option(None, "--png", help="Also save histograms as a PNG figure."),
    bins: int = typer.Option(12, "--bins", help=f"Sequence-length histogram bins (1-{MAX_BINS})."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Pieces, tokens, sequence lengths, Music BPE compression and instruments of a dataset.

    Example:

      orchestrion symphony stats data/ --png data_stats.png
    """
    import numpy as np

    from orchestrion.symbolic.dataset import TokenDataset, dataset_stats
    from orchestrion.symbolic.pianoroll import program_name

    if not 1 <= bins <= MAX_BINS:  # each bin is a printed table row
        raise DataError(f"--bins must be 1-{MAX_BINS}, got {bins}")
    if png is not None:
        check_output_path(png, overwrite=overwrite, inputs=[data_dir])
    dataset = TokenDataset(data_dir)
    summary = dataset_stats(dataset)
    counts = dataset.manifest["counts"]
    table = Table(title=f"dataset {data_dir}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("files seen / ok / failed", f"{counts['files_seen']:,} / {counts['files_ok']:,} / "
                                             f"{counts['files_failed']:,}")
    table.add_row("pieces", f"{summary.pieces:,}")
    table.add_row("steps (tokens)", f"{summary.steps:,}")
    table.add_row("notes", f"{summary.notes:,}")
    table.add_row("event vocabulary", f"{dataset.event_vocab_size:,}")
    if dataset.bpe is not None:
        table.add_row("Music BPE merges", f"{dataset.bpe.n_merges}")
        table.add_row("steps before BPE", f"{summary.mmr_steps:,}")
        table.add_row("compression (after / before)", f"{summary.compression:.4f}")
    if summary.pieces:
        lengths = summary.lengths
        table.add_row("steps per piece min / median / max",
                      f"{lengths.min():,} / {int(np.median(lengths)):,} / {lengths.max():,}")
    console.print(table)

    if summary.pieces:
        counts_h, edges = np.histogram(summary.lengths, bins=bins)
        hist = Table(title="sequence length (steps)")
        hist.add_column("range", justify="right")
        hist.add_column("pieces", justify="right")
        hist.add_column("")
        for n, lo, hi in zip(counts_h, edges[:-1], edges[1:], strict=True):
            hist.add_row(f"{int(lo):,}-{int(hi):,}", str(n), "█" * round(30 * n / max(counts_h.max(), 1)))
        console.print(hist)

    used = np.flatnonzero(summary.instrument_notes)
    order = used[np.argsort(-summary.instrument_notes[used], kind="stable")]
    names = [program_name(int(p)) for p in order]
    instruments = Table(title="instruments")
    for column in ("program", "name", "tracks", "notes"):
        instruments.add_column(column, justify="left" if column == "name" else "right")
    for program, name in zip(order, names, strict=True):
        instruments.add_row(str(program), name, f"{summary.instrument_tracks[program]:,}",
                            f"{summary.instrument_notes[program]:,}")
    console.print(instruments)

    if png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax_len, ax_ins) = plt.subplots(1, 2, figsize=(12, 4.5))
        ax_len.hist(summary.lengths, bins=bins, color="tab:blue")
        ax_len.set_xlabel("steps per piece")
        ax_len.set_ylabel("pieces")
        ax_len.set_title("sequence length")
        top = order[:20]
        ax_ins.barh([names[i] for i in range(len(top))][::-1], summary.instrument_notes[top][::-1], color="tab:green")
        ax_ins.set_xlabel("notes")
        ax_ins.set_title("instruments (top 20)")
        fig.tight_layout()
        with atomic_path(png) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        console.print(f"wrote {png}")


@app.command()
def pianoroll(
    source: Path = typer.Argument(..., help="A .mid/.midi file, a token file (.npy/.txt) or a dataset folder."),
    out: Path = typer.Argument(..., help="PNG file to write."),
    bpe: Path | None = typer.Option(None, "--bpe", help="Music BPE merges the tokens use."),
    data: Path | None = typer.Option(None, "--data", help="Dataset whose merges the tokens use."),
    piece: int | None = typer.Option(None, "--piece", help="Piece index (from 0) when SOURCE is a dataset folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Draw a piano roll (one colour per track, drums as hits on their own lane) of a MIDI file or of tokens.

    A dataset piece is titled with the MIDI file it came from.

    Example:

      orchestrion symphony pianoroll data/ roll.png --piece 3
    """
    from orchestrion.symbolic.midi import load_midi
    from orchestrion.symbolic.pianoroll import plot_pianoroll

    check_output_path(out, overwrite=overwrite, inputs=[source])
    if source.suffix.lower() in (".mid", ".midi"):
        if piece is not None:
            raise DataError("--piece only applies to a dataset folder")
        score, title = load_midi(source), source.name
    else:
        array, merges, title = _read_tokens(source, _load_bpe(bpe, data), piece)
        score = _to_score(array, merges, title)
    plot_pianoroll(score, out, title=title)
    console.print(f"wrote {out}")


@app.command()
def train(
    data_dir: Path = typer.Argument(..., help="Token dataset folder made by `orchestrion symphony tokenize`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (checkpoints, metrics, samples)."),
    preset: str = typer.Option("full", "--preset", help="Model size and recipe: full (≈ 39 M, reference), "
                                                       "small (CPU), debug (tests)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest checkpoint."),
    steps: int | None = typer.Option(None, "--steps", help="Total optimizer updates (default: the preset's)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="GLOBAL windows per update, over all "
                                                                     "processes (default: the preset's)."),
    micro_batch: int | None = typer.Option(None, "--micro-batch", help="Windows per forward pass and process "
                                                                       "(lower it to fit memory)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default: the preset's)."),
    warmup: int | None = typer.Option(None, "--warmup", help="Warm-up updates (default: the preset's fraction)."),
    window: int | None = typer.Option(None, "--window", help="Training window in steps (default: the preset's)."),
    dropout: float | None = typer.Option(None, "--dropout", help="Dropout rate (default: the preset's, 0.1)."),
    valid_fraction: float | None = typer.Option(None, "--valid-fraction",
                                                help="Share of pieces held out for validation (0: none)."),
    split_seed: int | None = typer.Option(None, "--split-seed", help="Seed of the train/valid/test shuffle "
                                                                     "(default 1998, the reference's)."),
    workers: int = typer.Option(0, "--workers", help="Data-loading worker processes."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", help="Updates between checkpoints, "
                                                                          "validations and samples."),
    log_every: int = typer.Option(10, "--log-every", help="Updates between metrics.jsonl lines."),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights and of the window stream."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Train a SymphonyNet linear transformer on a token dataset (seeded split, windows, AdamW, warm-up).

    Validation bits per field, instrument accuracy, a sampled MIDI and its piano roll are written at
    every checkpoint. Under torchrun, --batch-size stays the global batch.

    Example:

      orchestrion symphony train data/ --out runs/sym --preset small --steps 2000

      torchrun --nproc_per_node=8 $(which orchestrion) symphony train data/ --out runs/full --micro-batch 2
    """
    import os

    from orchestrion.symphony.train import train_symphony

    metrics = train_symphony(
        data_dir, out, preset=preset, resume=resume, steps=steps, batch_size=batch_size, micro_batch=micro_batch,
        learning_rate=lr, warmup_steps=warmup, window=window, dropout=dropout, valid_fraction=valid_fraction,
        split_seed=split_seed, workers=workers, checkpoint_every=checkpoint_every, log_every=log_every, seed=seed,
        device=device,
    )
    if metrics and os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        console.print("last step: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


def _steps_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("generating steps"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=console, transient=True, disable=not console.is_terminal)


def _assignment_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title)
    for column in header:
        table.add_column(column, justify="left" if column in ("instrument", "was", "name", "from") else "right")
    for row in rows:
        table.add_row(*row)
    return table


@app.command()
def generate(
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Trained run directory or checkpoint (default: the bundled model)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="MIDI file to write."),
    prompt: Path | None = typer.Option(None, "--prompt", help="MIDI file to continue (its notes and instruments "
                                                              "are kept)."),
    prompt_bars: int | None = typer.Option(None, "--prompt-bars", help="Use only the first N bars of the prompt "
                                                                       "(default: all)."),
    prompt_chords: int = typer.Option(0, "--prompt-chords", help="Reuse the chords of the prompt's first K bars, "
                                      "in order, for the first K chords generated (the reference's constraint)."),
    bars: int | None = typer.Option(None, "--bars", help="Generate exactly N new bars (any length: the model's "
                                                         "window slides)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Generate at most N new steps (default without "
                                                                   "--bars: 4090, stopping earlier at the end token)."),
    instruments: str | None = typer.Option(None, "--instruments", help="Comma-separated General MIDI instrument "
                                           "names or programs the new tracks may play, e.g. 'Violin,Cello,Flute'."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="Softmax temperature of events and "
                                                                       "durations (> 0; lower = safer)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (1 = full distribution)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same piece."),
    num_samples: int = typer.Option(1, "--num-samples", "-n", help="Sample N pieces at once (batched, faster per "
                                    "piece); written as OUT_1.mid ... OUT_N.mid, seeds SEED ... SEED+N-1."),
    argmax_instruments: bool = typer.Option(False, "--argmax-instruments", help="Give each track its most likely "
                                            "instrument instead of sampling it (nucleus p = 0.9)."),
    render: Path | None = typer.Option(None, "--render", help="Also render the piece to this .wav file."),
    tokens_out: Path | None = typer.Option(None, "--tokens", help="Also save the MMR tokens (.npy or .txt)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Sample a multi-track piece with a trained SymphonyNet, from scratch or continuing a prompt.

    Every step is masked by the MMR grammar, so the output is always a valid piece; each track's
    instrument is chosen from the model's averaged instrument predictions and printed.

    Example:

      orchestrion symphony generate --model runs/sym --out new.mid --bars 32 --seed 1

      orchestrion symphony generate --model runs/sym --prompt theme.mid --prompt-bars 4 --bars 16 --out more.mid
      --instruments "Violin,Viola,Cello,French Horn" --render more.wav

      orchestrion symphony generate --model runs/sym --out take.mid --num-samples 4 --max-steps 2000
    """
    from orchestrion.device import resolve_device
    from orchestrion.fileio import check_output_path
    from orchestrion.symbolic.dataset import save_token_file
    from orchestrion.symbolic.midi import save_midi
    from orchestrion.symphony.generate import (
        DEFAULT_MAX_STEPS,
        GenerationError,
        SamplingOptions,
        generate_midi,
        parse_instruments,
        program_label,
    )
    from orchestrion.symphony.models import load_symphony

    if num_samples < 1:
        raise GenerationError(f"--num-samples must be ≥ 1, got {num_samples}")

    def numbered(path: Path | None, k: int) -> Path | None:
        return path if path is None or num_samples == 1 else path.with_name(f"{path.stem}_{k + 1}{path.suffix}")

    inputs = [prompt] if prompt is not None else []
    for k in range(num_samples):
        for path in (numbered(out, k), numbered(render, k), numbered(tokens_out, k)):
            if path is not None:
                check_output_path(path, overwrite=overwrite, inputs=inputs)
    if bars is not None and max_steps is not None:
        raise GenerationError("give either --bars or --max-steps, not both")
    if (prompt_bars is not None or prompt_chords) and prompt is None:
        raise GenerationError("--prompt-bars and --prompt-chords need --prompt")
    programs = parse_instruments(instruments) if instruments is not None else None
    from orchestrion.pretrained import model_or_default

    trained = load_symphony(model_or_default(model, "symphony"), resolve_device(device))
    options = SamplingOptions(
        temperature=temperature, top_p=top_p, seed=seed, bars=bars, max_steps=max_steps, instruments=programs,
        orchestration="argmax" if argmax_instruments else "nucleus",
        track_order="distinct" if trained.training.relabel_tracks else "ascending", prompt_chords=prompt_chords,
    )
    per_piece = max_steps or (DEFAULT_MAX_STEPS if bars is None else None)
    with _steps_progress() as bar:
        task = bar.add_task("generate", total=per_piece * num_samples if per_piece else None)
        results = generate_midi(trained.model, trained.bpe, options, prompt, prompt_bars,
                                progress=lambda n: bar.update(task, completed=n), n_samples=num_samples)
    for k, result in enumerate(results):
        path = numbered(out, k)
        score = result.score()
        save_midi(score, path)
        if tokens_out is not None:
            save_token_file(numbered(tokens_out, k), result.tokens, trained.bpe)
        console.print(_assignment_table(
            f"instruments of {path.name}", ("track", "instrument", "probability", "notes", "from"),
            [(str(a.track), program_label(a.program), f"{a.probability:.2f}", str(a.n_notes), a.source)
             for a in result.assignments],
        ))
        old_bars = _bars_in(result.tokens[: result.prompt_steps])
        console.print(f"wrote {path}: {result.n_bars - old_bars} new bars after {old_bars} prompt bars, "
                      f"{score.note_num()} notes, {len(result.tokens) - result.prompt_steps} new steps, "
                      f"{result.n_windows} window(s), seed {seed + k}, "
                      f"stopped by {result.stopped_by.replace('_', ' ')}", soft_wrap=True)
        if render is not None:
            from orchestrion.audio.render import render_file

            render_file(path, numbered(render, k))
            console.print(f"wrote {numbered(render, k)}")


def _bars_in(tokens: np.ndarray) -> int:
    from orchestrion.symbolic.mmr_vocab import BAR_OFFSET, POS_OFFSET

    return int(((tokens[:, 0] >= BAR_OFFSET) & (tokens[:, 0] < POS_OFFSET)).sum())


@app.command()
def orchestrate(
    midi_in: Path = typer.Argument(..., help="Multi-track MIDI file whose instruments are unknown or to be replaced."),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Trained run directory or checkpoint (default: the bundled model)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="MIDI file to write (same notes, new programs)."),
    keep_drums: bool = typer.Option(False, "--keep-drums", help="Drum tracks stay drums; no other track becomes "
                                                                "drums."),
    argmax: bool = typer.Option(False, "--argmax", help="Most likely instrument per track instead of nucleus "
                                                        "sampling (p = 0.9)."),
    instruments: str | None = typer.Option(None, "--instruments", help="Comma-separated General MIDI names or "
                                           "programs the tracks may be given."),
    seed: int = typer.Option(0, "--seed", help="Random seed (track relabelling and sampling)."),
    render: Path | None = typer.Option(None, "--render", help="Also render the result to this .wav file."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Choose an instrument for every track of a MIDI file with a trained SymphonyNet (auto-orchestration).

    The model reads the whole piece (instruments hidden from it, as always) and each track gets the
    instrument its averaged predictions favour; notes are left untouched.

    Example:

      orchestrion symphony orchestrate sketch.mid --model runs/sym --out orchestrated.mid --keep-drums
    """
    from orchestrion.device import resolve_device
    from orchestrion.fileio import check_output_path
    from orchestrion.symbolic.midi import save_midi
    from orchestrion.symphony.generate import orchestrate as orchestrate_midi
    from orchestrion.symphony.generate import parse_instruments, program_label
    from orchestrion.symphony.models import load_symphony

    for path in (out, render):
        if path is not None:
            check_output_path(path, overwrite=overwrite, inputs=[midi_in])
    programs = parse_instruments(instruments) if instruments is not None else None
    from orchestrion.pretrained import model_or_default

    trained = load_symphony(model_or_default(model, "symphony"), resolve_device(device))
    result = orchestrate_midi(midi_in, trained.model, trained.bpe, keep_drums=keep_drums,
                              mode="argmax" if argmax else "nucleus", seed=seed, instruments=programs,
                              track_order="distinct" if trained.training.relabel_tracks else "ascending")
    save_midi(result.score, out)
    console.print(_assignment_table(
        "instruments", ("track", "name", "notes", "was", "instrument", "probability"),
        [(str(t.index), t.name, str(t.n_notes), program_label(t.old_program), program_label(t.program),
          "kept" if t.probability is None else f"{t.probability:.2f}") for t in result.tracks],
    ))
    console.print(f"wrote {out} ({result.n_windows} model window(s))")
    if render is not None:
        from orchestrion.audio.render import render_file

        render_file(out, render)
        console.print(f"wrote {render}")
