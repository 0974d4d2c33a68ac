"""MIDI → MMR token speed and memory, side by side with baselines, single process.

Encoders (each runs in its own fresh subprocess so its peak RSS is its own):

* ``orchestrion``: :func:`orchestrion.symbolic.mmr.encode` (vectorised NumPy, reference grammar).
* ``python``: the same representation computed note by note with Python lists, ``Fraction``
  quantisation, key-function sorts and string tokens, the way the SymphonyNet reference
  preprocessing works. Its output is checked to equal orchestrion's string view.
* ``miditok``: miditok's REMI tokenizer (programs, tempos, time signatures) if ``miditok`` is
  importable (it is not a dependency of orchestrion; install it separately to include it).

Inputs, generated deterministically: ``--files`` dense MIDIs with 16 tracks and about 2,000 notes
per track (one drum track), time-signature and tempo changes; plus ``--chorales`` Bach chorales
exported from music21's bundled corpus when music21 is installed.

Example:
    python benchmarks/symbolic_encode_speed.py --files 4 --chorales 20
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np

TPQ = 480


def make_dense_midis(out_dir: Path, n_files: int, n_tracks: int = 16, notes_per_track: int = 2000) -> list[Path]:
    import symusic
    from symusic.core import NoteTickList

    from orchestrion.symbolic.midi import save_midi

    paths = []
    for f in range(n_files):
        rng = np.random.default_rng(1000 + f)
        score = symusic.Score(TPQ)
        for tick, num, den in ((0, 4, 4), (TPQ * 4 * 200, 3, 4), (TPQ * 4 * 200 + TPQ * 3 * 100, 4, 4)):
            score.time_signatures.append(symusic.TimeSignature(tick, num, den))
        for k in range(40):
            score.tempos.append(symusic.Tempo(k * TPQ * 4 * 10, qpm=float(rng.uniform(60, 160))))
        for k in range(n_tracks):
            track = symusic.Track(name=f"t{k}", program=(5 * k) % 128, is_drum=k == n_tracks - 1)
            start = np.sort(rng.integers(0, TPQ * 4 * 400, notes_per_track))
            start = np.where(rng.random(notes_per_track) < 0.7, start // 60 * 60, start).astype(np.int32)
            track.notes = NoteTickList.from_numpy(
                start,
                rng.integers(20, 6 * TPQ, notes_per_track).astype(np.int32),
                rng.integers(30, 100, notes_per_track).astype(np.int8),
                np.full(notes_per_track, 80, dtype=np.int8),
            )
            score.tracks.append(track)
        paths.append(save_midi(score, out_dir / f"dense_{f}.mid"))
    return paths


def export_chorales(out_dir: Path, n: int) -> list[Path]:
    try:
        from music21 import corpus
    except ImportError:
        return []
    paths = []
    for src in corpus.getComposer("bach"):
        if len(paths) >= n:
            break
        if not str(src).endswith((".mxl", ".xml", ".krn")):
            continue
        try:
            out = out_dir / f"bach_{len(paths):03d}.mid"
            corpus.parse(src).write("midi", fp=str(out))
            paths.append(out)
        except Exception:  # music21 cannot export a few scores to MIDI; skip them
            continue
    return paths


# --------------------------------------------------------------------------------------------
# Baseline: the MMR computed note by note with Python objects (reference style)
# --------------------------------------------------------------------------------------------

_LETTERS = ("C", "d", "D", "e", "E", "F", "g", "G", "a", "A", "b", "B")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TEMPLATES = {
    "M": (10, -2, -1, -2, 10, -5, -2, 10, -2, -1, -2, 0), "m": (10, -2, -1, 10, -2, -5, -2, 10, -1, -2, 0, -2),
    "o": (10, -2, -1, 10, -2, -1, 10, -2, -2, 1, -1, -2), "+": (10, -2, -1, -2, 10, -1, -2, -2, 10, -1, -2, 0),
    "sus2": (10, -2, 5, -2, -1, -5, -2, 5, -2, -1, -2, 0), "sus4": (10, -2, -1, -2, -5, 5, -2, 5, -2, -1, -2, 0),
}
_REBASS = {("o", 4): "7", ("o", 3): "o7", ("M", 3): "m7", ("m", 4): "M7", ("m", 3): "/o7",
           ("sus2", 5): "sus4", ("sus4", 7): "sus2"}


def _two(a: str, b: str, x: int) -> str:
    return a + _DIGITS[x] if x < 62 else b + _DIGITS[x - 62]


def _pitch(p: int) -> str:
    return _LETTERS[p % 12] + ("O" if p < 12 else _DIGITS[p // 12 - 1])


def _ins(p: int) -> str:
    return "x" + _DIGITS[p] if p < 62 else ("X" + _DIGITS[p - 62] if p < 124 else "y" + _DIGITS[p - 124])


def _chord(notes: list[tuple[int, int, int]], bar_len: int) -> str:
    end = min(bar_len, 8)
    chroma, per_pitch = [0] * 12, defaultdict(int)
    for o, d, p in notes:
        span = min(end, o + d if o > 0 else 8) - o
        chroma[p % 12] += span
        per_pitch[p] += span
    bass = next((p % 12 for p, s in sorted(per_pitch.items()) if 8 * s >= end), None)
    best, root, quality = 0, -1, None
    for i in range(12):
        rotated = chroma[i:] + chroma[:i]
        if rotated[0]:
            for q, w in _TEMPLATES.items():
                score = sum(a * b for a, b in zip(rotated, w, strict=True))
                if score > best:
                    best, root, quality = score, i, q
    if best < 10 * end:
        return "HNA"
    if bass is not None and (quality, (root - bass) % 12) in _REBASS:
        root, quality = bass, _REBASS[(quality, (root - bass) % 12)]
    maj7, min7 = chroma[(root + 11) % 12], chroma[(root + 10) % 12]
    if quality == "M" and maj7 > 0 and maj7 > min7:
        quality = "M7"
    elif quality == "M" and min7 > 0 and min7 > maj7:
        quality = "7"
    if quality == "m" and min7 > 0:
        quality = "m7"
    return "H" + _LETTERS[root] + ("D7" if quality == "7" else quality)


def encode_python_strings(path: Path) -> list[tuple[str, str, str, str]]:
    """Prime-path MMR (no sparse merge, no tempo tokens) with per-note Python work."""
    from orchestrion.symbolic.midi import load_midi

    score = load_midi(path)
    tpb = score.ticks_per_quarter
    tracks, drums = [], []
    for t in score.tracks:
        notes = [(n.time, n.duration, n.pitch) for n in t.notes if n.duration > 0]
        if notes:
            (drums.extend(notes) if t.is_drum else tracks.append([t.program, False, notes]))
    if drums:
        tracks.append([128, True, sorted(set(drums))])
    events = []  # [tick, pitch, source track, duration ticks]
    for k, (_, _, notes) in enumerate(tracks):
        for start, dur, pitch in notes:
            while dur > 4 * tpb:
                events.append([start, pitch, k, 4 * tpb])
                start, dur = start + 4 * tpb, dur - 4 * tpb
            events.append([start, pitch, k, dur])
    first, last = min(e[0] for e in events), max(e[0] for e in events)
    sigs = [(ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures]
    if not sigs or sigs[0][0] > first:
        sigs.insert(0, (0, 4, 4))
    sigs = [s for i, s in enumerate(sigs) if i == 0 or s[1:] != sigs[i - 1][1:]]
    bars = []
    for i, (tick, num, den) in enumerate(sigs):
        tpm = tpb * 4 * num // den
        seg_end = min(sigs[i + 1][0] if i + 1 < len(sigs) else last + tpm, last + tpm)
        bars += [(s, min(s + tpm, seg_end)) for s in range(tick, seg_end, tpm)]
    starts = [b[0] for b in bars]
    q, half = Fraction(tpb, 8), Fraction(tpb, 16)
    lengths = [max(1, int((e - s) // q + ((e - s) % q >= half))) for s, e in bars]
    quantised = set()
    for tick, pitch, k, dur in events:
        m = bisect.bisect_right(starts, tick) - 1
        rel = tick - starts[m]
        pos = min(int(rel // q + (rel % q > half)), lengths[m] - 1)
        d = 1 if dur < q else int(dur // q + (dur % q > half))
        quantised.add((m, k, pos, pitch, d))
    counts = defaultdict(int)
    for note in quantised:
        counts[note[1]] += 1
    order = sorted(range(len(tracks)), key=lambda k: (not tracks[k][1], -counts[k]))
    rank = {k: i for i, k in enumerate(order)}
    notes = sorted((m, rank[k], pos, pitch, d) for m, k, pos, pitch, d in quantised)
    m_lo, m_hi = notes[0][0], notes[-1][0]
    by_measure = {m: list(g) for m, g in itertools.groupby(notes, key=lambda n: n[0])}
    out = []
    for m in range(m_lo, m_hi + 1):
        measure = by_measure.get(m, [])
        chord_notes = [(pos, d, p) for _, t, pos, p, d in measure
                       if tracks[order[t]][0] != 128 and 21 <= p <= 108 and pos < 8]
        out += [(_two("m", "M", lengths[m]), "RZ", "TZ", "YZ"), (_chord(chord_notes, lengths[m]), "RZ", "TZ", "YZ")]
        for t, seg in itertools.groupby(measure, key=lambda n: n[1]):
            out.append(("NT", "RZ", "TZ", "YZ"))
            for pos, group in itertools.groupby(seg, key=lambda n: n[2]):
                out.append((_two("p", "P", pos), "RZ", "TZ", "YZ"))
                out += [(_pitch(p), _two("r", "R", d), _two("t", "T", t), _ins(tracks[order[t]][0]))
                        for _, _, _, p, d in group]
    return out


# --------------------------------------------------------------------------------------------
# Worker: one encoder over all files, in its own process
# --------------------------------------------------------------------------------------------


def _rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    VmHWM is per address space, so it restarts at exec; ru_maxrss can carry the parent's peak
    into a fork-exec'd child, so it is only the fallback off Linux (where it reports KiB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_worker(encoder: str, files: list[Path], repeat: int) -> dict:
    import symusic

    from orchestrion.symbolic.mmr import MMRConfig, encode

    if encoder == "orchestrion":
        config = MMRConfig(tempo_tokens=False)

        def fn(p: Path) -> int:
            return len(encode(p, merge_sparse_tracks=False, config=config).tokens)
    elif encoder == "python":

        def fn(p: Path) -> int:
            return len(encode_python_strings(p))
    else:
        from miditok import REMI, TokenizerConfig

        tok = REMI(TokenizerConfig(use_programs=True, use_tempos=True, use_time_signatures=True,
                                   one_token_stream_for_programs=True))

        def fn(p: Path) -> int:
            return len(tok.encode(p).ids)

    notes = sum(symusic.Score(str(p)).note_num() for p in files)
    fn(files[0])  # warm-up: imports, caches
    rss_before = _rss_mb()
    best, steps = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        steps = sum(fn(p) for p in files)
        best = min(best, time.perf_counter() - t0)
    return {"encoder": encoder, "files": len(files), "notes": notes, "steps": steps, "seconds": best,
            "notes_per_s": notes / best, "files_per_s": len(files) / best,
            "peak_rss_mb": _rss_mb(), "rss_growth_mb": _rss_mb() - rss_before}


def _run_in_subprocess(encoder: str, files: list[Path], repeat: int) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", encoder, "--repeat", str(repeat), *map(str, files)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  {encoder}: failed\n{proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_baseline_agrees(files: list[Path]) -> bool:
    from orchestrion.symbolic.mmr import MMRConfig, encode
    from orchestrion.symbolic.mmr_vocab import to_strings

    config = MMRConfig(tempo_tokens=False)
    return all(
        to_strings(encode(p, merge_sparse_tracks=False, config=config).tokens) == encode_python_strings(p)
        for p in files
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4, help="number of dense generated MIDIs")
    parser.add_argument("--chorales", type=int, default=20, help="music21 Bach chorales to export (0 = none)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per encoder; the best is reported")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, [Path(p) for p in args.paths], args.repeat)))
        return

    try:
        import miditok  # noqa: F401

        encoders = ["orchestrion", "python", "miditok"]
    except ImportError:
        encoders = ["orchestrion", "python"]
        print("miditok not importable: REMI baseline skipped")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"dense": make_dense_midis(Path(tmp), args.files)}
        if args.chorales:
            chorales = export_chorales(Path(tmp), args.chorales)
            if chorales:
                sets["bach_chorales"] = chorales
        for name, files in sets.items():
            print(f"\n{name}: {len(files)} files; python baseline output == orchestrion strings: "
                  f"{_check_baseline_agrees(files)}")
            print(f"  {'encoder':<12} {'notes':>8} {'steps':>8} {'seconds':>8} {'notes/s':>11} {'files/s':>8} "
                  f"{'peak RSS MB':>11} {'RSS growth MB':>13}")
            for encoder in encoders:
                r = _run_in_subprocess(encoder, files, args.repeat)
                if r is not None:
                    print(f"  {r['encoder']:<12} {r['notes']:>8} {r['steps']:>8} {r['seconds']:>8.3f} "
                          f"{r['notes_per_s']:>11,.0f} {r['files_per_s']:>8.1f} {r['peak_rss_mb']:>11.1f} "
                          f"{r['rss_growth_mb']:>13.1f}")


if __name__ == "__main__":
    main()
