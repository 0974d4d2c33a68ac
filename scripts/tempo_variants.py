"""Render MIDI pieces at random tempi for strings or organ: GAN training audio with a wide spread of note density.

The default Musika data (soundfont choirs and string quartets at their written tempi) gives madmom
few onsets: most of its note-density curve is near zero, so a GAN conditioned on it has nothing to
learn. This renders every ``--every``-th piece of MIDI_DIR (only pieces whose name is in ``--only``,
if given) with all parts on string-quartet programs (2 of 3 pieces) or church organ (1 of 3), at a
tempo drawn log-uniformly from ``--bpm-min`` to ``--bpm-max``; onsets of both survive the bundled
autoencoder (measured: violins 0.9 → 2.0 onsets/s at 40 BPM and 4.5 → 5.5 at 200 BPM after a
round trip; choir and piano do not). Seeded, restartable (existing files are kept).

    python scripts/tempo_variants.py MIDI_DIR OUT_DIR [--only TRAIN_AUDIO_DIR] [--every 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import symusic

from orchestrion.audio.io import save_audio
from orchestrion.audio.render import render_midi
from orchestrion.audio.spectral import SAMPLE_RATE

STRINGS = (40, 40, 41, 42)  # violin, violin, viola, cello (GM programs)
ORGAN = 19


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("midi_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", type=Path, help="keep pieces whose stem names a file in this folder")
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--bpm-min", type=float, default=40.0)
    parser.add_argument("--bpm-max", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pieces = sorted(args.midi_dir.glob("*.mid"))
    if args.only is not None:
        keep = {path.stem for path in args.only.iterdir()}
        pieces = [path for path in pieces if path.stem in keep]
    rng = random.Random(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for number, path in enumerate(pieces[:: args.every]):
        bpm = math.exp(rng.uniform(math.log(args.bpm_min), math.log(args.bpm_max)))
        organ = number % 3 == 2
        target = args.out_dir / f"{path.stem}-{'organ' if organ else 'strings'}-{bpm:.0f}bpm.wav"
        if target.exists():
            continue
        score = symusic.Score(str(path))
        for tempo in score.tempos:
            tempo.qpm = bpm
        for index, track in enumerate(score.tracks):
            track.program = ORGAN if organ else STRINGS[index % len(STRINGS)]
        save_audio(target, render_midi(score.dumps_midi(), normalize=True), SAMPLE_RATE)
        print(target.name, flush=True)


if __name__ == "__main__":
    main()
