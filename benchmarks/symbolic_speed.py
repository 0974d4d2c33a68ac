"""Music BPE pipeline speed: orchestrion vs a pure-Python port of the SymphonyNet reference.

The *pipeline* is what ``--learn-bpe`` adds on top of MMR encoding: count the note-group words
of the corpus, learn the merges, apply them to every piece. Configurations, each run in a fresh
subprocess so that peak RSS is its own:

* ``reference``: port of the reference approach (``get_bpe_data.py`` + ``fastBPE.hpp``): pieces
  as lines of space-separated MMR strings, groups counted with Python loops over the strings,
  learning with incremental pair updates but a linear scan over all pairs per merge
  (``find_maxp``), applying by re-scanning every line (with the reference's per-word cache).
* ``orchestrion-1``: :mod:`orchestrion.symbolic.music_bpe` in one process on in-memory arrays.
* ``orchestrion-K``: the dataset path with K worker processes: count words over memory-mapped
  MMR shards, learn, and write a BPE copy of every shard (``apply_bpe_dataset``), disk I/O included.

Both learners must produce the same merges and the same number of steps (checked).

Data: deterministic dense orchestral MIDI files generated here (no orchestral corpus is
installable offline): 14 tracks (strings, winds, brass; a few instruments doubled), 48 bars of
4/4; every track plays on each beat or eighth 1-4 chord tones (random voicing inside its
two-octave range) of a harmony that changes every half bar (random root and chord type), plus
passing notes of another duration; ~7k notes and ~11k MMR steps per file. MMR encoding is done once per corpus
size and is not part of the timings (its throughput is printed for reference).

Usage::

    python benchmarks/symbolic_speed.py                       # sizes 25 50 100 200, 700 merges
    python benchmarks/symbolic_speed.py --sizes 10 --merges 100 --skip-reference-above 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

TPQ = 480
PROGRAMS = (40, 40, 41, 42, 43, 73, 68, 71, 70, 60, 60, 56, 57, 58)  # strings, winds, brass
REGISTERS = (74, 67, 60, 48, 36, 79, 72, 65, 50, 60, 55, 72, 50, 38)
CHORDS = ((0, 4, 7), (5, 9, 0), (7, 11, 2), (9, 0, 4), (2, 5, 9), (7, 11, 2, 5), (4, 7, 11), (0, 4, 7, 10))


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def dense_orchestral_midi(seed: int, n_measures: int = 48) -> bytes:
    """One deterministic dense multi-track piece as Standard MIDI File bytes."""
    import symusic

    rng = np.random.default_rng(seed)
    score = symusic.Score(TPQ)
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    score.tempos.append(symusic.Tempo(0, qpm=float(rng.integers(60, 140))))
    # A new harmony every half bar: random root (modulating freely) and chord type.
    roots = rng.integers(0, 12, size=n_measures * 2)
    kinds = rng.integers(0, len(CHORDS), size=n_measures * 2)
    for t, (program, register) in enumerate(zip(PROGRAMS, REGISTERS, strict=True)):
        notes: set[tuple[int, int, int]] = set()
        step = TPQ // 2 if rng.random() < 0.4 else TPQ
        span = np.arange(register - 7, register + 17)  # the instrument's two-octave range
        for onset in range(0, n_measures * 4 * TPQ, step):
            if rng.random() < 0.15:
                continue  # rests
            half = onset // (2 * TPQ)
            chord_pcs = {(int(roots[half]) + c) % 12 for c in CHORDS[kinds[half]]}
            tones = [int(p) for p in span if p % 12 in chord_pcs]
            size = min(int(rng.choice([1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4])), len(tones))
            dur = step * int(rng.choice([1, 1, 2])) if rng.random() < 0.8 else step // 2
            for pitch in rng.choice(tones, size=size, replace=False):
                notes.add((onset, dur, int(pitch)))
            if rng.random() < 0.3:  # a passing note with another duration at the same onset
                notes.add((onset, max(step // 2, 60), int(rng.choice(span))))
        arr = np.array(sorted(notes), dtype=np.int64)
        track = symusic.Track(name=f"t{t}", program=program, is_drum=False)
        track.notes = symusic.Note.from_numpy(
            time=arr[:, 0].astype(np.int32), duration=arr[:, 1].astype(np.int32),
            pitch=arr[:, 2].astype(np.int8), velocity=np.full(len(arr), 80, np.int8),
        )
        score.tracks.append(track)
    return score.dumps_midi()


def prepare(work: Path, sizes: list[int], workers: int) -> dict[int, Path]:
    """Write the MIDI files once and an MMR dataset per corpus size; returns size → dataset dir."""
    from orchestrion.symbolic.preprocess import TokenizeOptions, tokenize_corpus

    midi_all = work / "midi_all"
    midi_all.mkdir(parents=True, exist_ok=True)
    for i in range(max(sizes)):
        path = midi_all / f"piece_{i:04d}.mid"
        if not path.exists():
            path.write_bytes(dense_orchestral_midi(i))
    datasets = {}
    for n in sizes:
        midi_n = work / f"midi_{n}"
        midi_n.mkdir(exist_ok=True)
        for i in range(n):
            link = midi_n / f"piece_{i:04d}.mid"
            if not link.exists():
                os.link(midi_all / link.name, link)
        out = work / f"mmr_{n}"
        cached = (out / "manifest.json").is_file()
        start = time.perf_counter()
        manifest = tokenize_corpus(midi_n, out, workers=workers, options=TokenizeOptions(shard_files=16))
        seconds = time.perf_counter() - start
        notes = manifest["counts"]["notes"]
        encoding = "cached" if cached else (
            f"MMR encoding {seconds:.1f} s with {workers} workers, {notes / seconds:,.0f} notes/s, incl. MIDI parsing")
        print(f"  corpus {n:4d} files: {notes:,} notes, {manifest['counts']['steps']:,} MMR steps ({encoding})")
        datasets[n] = out
    return datasets


def load_pieces(data_dir: Path) -> list[np.ndarray]:
    from orchestrion.symbolic.dataset import TokenDataset

    dataset = TokenDataset(data_dir)
    return [np.asarray(dataset.piece(i), dtype=np.int32) for i in range(len(dataset))]


def rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


# --------------------------------------------------------------------------------------------
# Reference approach (pure Python port)
# --------------------------------------------------------------------------------------------

PIT_LETTERS = "CdDeEFgGaAbB"
CHAR2PIT = {c: i for i, c in enumerate(PIT_LETTERS)}


def ispitch(x: str) -> bool:
    return len(x) == 2 and x[0] in CHAR2PIT and (x[1] == "O" or x[1].isdigit())


def str2pit(x: str) -> int:
    octave = -1 if x[1] == "O" else int(x[1])
    return (octave + 1) * 12 + CHAR2PIT[x[0]]


def pit2str(p: int) -> str:
    return PIT_LETTERS[p % 12] + ("O" if p < 12 else str(p // 12 - 1))


def ref_count_single_mulpies(line: str) -> tuple[Counter, int]:
    toks = line.split()
    mulpies: dict[str, set[str]] = {}
    chord_dict: Counter = Counter()
    for idx in range(0, len(toks), 4):
        e, d = toks[idx : idx + 2]
        if not ispitch(e):
            if mulpies:
                for mulpi in mulpies.values():
                    if len(mulpi) > 1:
                        chord_dict[tuple(sorted(mulpi, key=str2pit))] += 1
                mulpies = {}
        else:
            mulpies.setdefault(d, set()).add(e)
    for mulpi in mulpies.values():
        if len(mulpi) > 1:
            chord_dict[tuple(sorted(mulpi, key=str2pit))] += 1
    return chord_dict, len(toks) // 4


def ref_learnbpe(mulpi_list: list[tuple[tuple[str, ...], int]], n_merges: int) -> list[tuple[int, int, int]]:
    """fastBPE ``learnbpe``: incremental pair counts, linear ``find_maxp`` scan per merge."""
    words = [[str2pit(x) for x in word] for word, _ in mulpi_list]
    counts = [c for _, c in mulpi_list]
    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for wi, word in enumerate(words):
        for i in range(len(word)):
            for j in range(i + 1, len(word)):
                pair = (word[i], word[j])
                pair_counts[pair] = pair_counts.get(pair, 0) + counts[wi]
                where.setdefault(pair, set()).add(wi)
    merges = []
    for _ in range(n_merges):
        max_c, max_p = 0, None
        for pair, c in pair_counts.items():  # find_maxp
            if c > max_c or (c == max_c and max_p is not None and c > 0 and pair < max_p):
                max_c, max_p = c, pair
        if max_p is None:
            break
        new = 128 + len(merges)
        merges.append((max_p[0], max_p[1], max_c))

        def change(pair: tuple[int, int], v: int, wi: int) -> None:
            pair_counts[pair] = pair_counts.get(pair, 0) + v
            if v > 0:
                where.setdefault(pair, set()).add(wi)
            else:
                where.setdefault(pair, set()).discard(wi)

        for wi in list(where.get(max_p, ())):
            word = words[wi]
            rest = [t for t in word if t != max_p[0] and t != max_p[1]]
            for t in rest:
                change((min(t, max_p[0]), max(t, max_p[0])), -counts[wi], wi)
                change((min(t, max_p[1]), max(t, max_p[1])), -counts[wi], wi)
                change((min(t, new), max(t, new)), counts[wi], wi)
            words[wi] = [*rest, new]
        pair_counts[max_p] = 0
    return merges


def ref_gettokens(voc: set[int], merges: list[tuple[int, int, int]]) -> set[int]:
    last_idx = 0
    while len(voc) > 1:
        for i in range(last_idx, len(merges)):
            t1, t2, t3 = merges[i]
            if t1 in voc and t2 in voc:
                voc.remove(t1)
                voc.remove(t2)
                voc.add(t3)
                last_idx = i + 1
                break
        else:
            break
    return voc


def ref_apply_sentence(line: str, merged_vocs: list[str], divide_res: dict, merges: list) -> int:
    toks = line.split()
    new_toks: list[str] = []
    mulpies: dict[str, set[str]] = {}
    other = None

    def flush() -> None:
        for dur, mulpi in mulpies.items():
            if len(mulpi) > 1:
                key = tuple(sorted(mulpi, key=str2pit))
                sub = divide_res[key] if key in divide_res else sorted(
                    ref_gettokens({str2pit(x) for x in key}, merges))
                for s in sub:
                    new_toks.extend([merged_vocs[s], dur, *other])
            else:
                new_toks.extend([next(iter(mulpi)), dur, *other])

    for idx in range(0, len(toks), 4):
        e, d = toks[idx : idx + 2]
        if not ispitch(e):
            if mulpies:
                flush()
                mulpies = {}
            new_toks.extend(toks[idx : idx + 4])
        else:
            mulpies.setdefault(d, set()).add(e)
            other = toks[idx + 2 : idx + 4]
    if mulpies:
        flush()
    return len(new_toks) // 4


def run_reference(pieces: list[np.ndarray], n_merges: int) -> dict:
    from orchestrion.symbolic.mmr_vocab import to_strings

    lines = [" ".join(s for step in to_strings(p) for s in step) for p in pieces]  # the raw corpus
    del pieces
    base_rss = rss_mb()
    t0 = time.perf_counter()
    chord_dict: Counter = Counter()
    before = 0
    for line in lines:
        sub, n = ref_count_single_mulpies(line)
        chord_dict += sub
        before += n
    mulpi_list = sorted(chord_dict.most_common(), key=lambda x: (-x[1], x[0]))
    t1 = time.perf_counter()
    merges = ref_learnbpe(mulpi_list, n_merges)
    t2 = time.perf_counter()
    merged_vocs = [pit2str(i) for i in range(128)]
    pitches = {i: (i,) for i in range(128)}
    for k, (a, b, _) in enumerate(merges):
        pitches[128 + k] = tuple(sorted(pitches[a] + pitches[b]))
        merged_vocs.append("".join(pit2str(p) for p in pitches[128 + k]))
    merge_ids = [(a, b, 128 + k) for k, (a, b, _) in enumerate(merges)]
    divide_res = {w: sorted(ref_gettokens({str2pit(x) for x in w}, merge_ids)) for w, _ in mulpi_list}
    after = sum(ref_apply_sentence(line, merged_vocs, divide_res, merge_ids) for line in lines)
    t3 = time.perf_counter()
    return {"count_s": t1 - t0, "learn_s": t2 - t1, "apply_s": t3 - t2, "steps_before": before,
            "steps_after": after, "merges": [list(pitches[128 + k]) for k in range(len(merges))],
            "base_rss_mb": base_rss}


# --------------------------------------------------------------------------------------------
# orchestrion
# --------------------------------------------------------------------------------------------


def run_orchestrion_inprocess(pieces: list[np.ndarray], n_merges: int) -> dict:
    from orchestrion.symbolic.mmr_vocab import PITCH_OFFSET
    from orchestrion.symbolic.music_bpe import MusicBPE, count_word_table

    base_rss = rss_mb()
    t0 = time.perf_counter()
    table = count_word_table(pieces, PITCH_OFFSET)
    t1 = time.perf_counter()
    bpe = MusicBPE().learn(table, n_merges)
    t2 = time.perf_counter()
    after = sum(len(p) for p in bpe.iter_apply(pieces))
    t3 = time.perf_counter()
    return {"count_s": t1 - t0, "learn_s": t2 - t1, "apply_s": t3 - t2,
            "steps_before": sum(len(p) for p in pieces), "steps_after": after,
            "merges": [list(m.pitches) for m in bpe.merges], "base_rss_mb": base_rss}


def run_orchestrion_workers(data_dir: Path, n_merges: int, workers: int) -> dict:
    from orchestrion.symbolic.music_bpe import MusicBPE
    from orchestrion.symbolic.preprocess import apply_bpe_dataset, count_dataset_words

    base_rss = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        table = count_dataset_words(data_dir, workers)
        t1 = time.perf_counter()
        bpe = MusicBPE().learn(table, n_merges)
        t2 = time.perf_counter()
        manifest = apply_bpe_dataset(data_dir, Path(tmp) / "bpe", bpe, workers=workers)
        t3 = time.perf_counter()
    counts = manifest["counts"]
    return {"count_s": t1 - t0, "learn_s": t2 - t1, "apply_s": t3 - t2, "steps_before": counts["mmr_steps"],
            "steps_after": counts["steps"], "merges": [list(m.pitches) for m in bpe.merges],
            "base_rss_mb": base_rss}


def measure(config: str, data_dir: Path, n_merges: int) -> dict:
    """Run one configuration in this (fresh) process; peak RSS covers data + pipeline."""
    if config.startswith("orchestrion-") and config != "orchestrion-1":
        result = run_orchestrion_workers(data_dir, n_merges, int(config.split("-")[1]))
    else:
        pieces = load_pieces(data_dir)
        run = run_reference if config == "reference" else run_orchestrion_inprocess
        result = run(pieces, n_merges)
    result["total_s"] = result["count_s"] + result["learn_s"] + result["apply_s"]
    result["peak_rss_mb"] = rss_mb()
    result["peak_child_rss_mb"] = rss_mb(resource.RUSAGE_CHILDREN)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--merges", type=int, default=700)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-reference-above", type=int, default=10**9,
                        help="do not run the (slow) reference on corpora larger than this")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "orchestrion_bpe_bench")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.data, args.merges)))
        return

    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {args.merges} merges; "
          f"data: generated dense orchestral MIDI (see module docstring) in {args.work_dir}")
    datasets = prepare(args.work_dir, args.sizes, args.workers)
    configs = ["reference", "orchestrion-1", f"orchestrion-{args.workers}"]
    header = (f"{'files':>5} {'config':<15} {'count s':>8} {'learn s':>8} {'apply s':>8} {'total s':>8} "
              f"{'speed-up':>8} {'peak RSS MB':>12} {'(+worker)':>9} {'steps after/before':>19}")
    print(header)
    print("-" * len(header))
    for n, data_dir in datasets.items():
        results = {}
        for config in configs:
            if config == "reference" and n > args.skip_reference_above:
                continue
            out = subprocess.run([sys.executable, __file__, "--measure", config, "--data", str(data_dir),
                                  "--merges", str(args.merges)], capture_output=True, text=True, check=True)
            results[config] = json.loads(out.stdout.strip().splitlines()[-1])
        ref = results.get("reference")
        for config, r in results.items():
            speedup = f"{ref['total_s'] / r['total_s']:.1f}x" if ref else "-"
            child = f"{r['peak_child_rss_mb']:.0f}" if r["peak_child_rss_mb"] > 0 else "-"
            print(f"{n:>5} {config:<15} {r['count_s']:>8.2f} {r['learn_s']:>8.2f} {r['apply_s']:>8.2f} "
                  f"{r['total_s']:>8.2f} {speedup:>8} {r['peak_rss_mb']:>12.0f} {child:>9} "
                  f"{r['steps_after'] / r['steps_before']:>19.4f}")
        merges = {config: r["merges"] for config, r in results.items()}
        steps = {config: (r["steps_before"], r["steps_after"]) for config, r in results.items()}
        same = len({json.dumps(m) for m in merges.values()}) == 1 and len(set(steps.values())) == 1
        print(f"{'':>5} merges and step counts identical across configurations: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
