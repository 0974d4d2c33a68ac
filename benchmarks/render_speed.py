"""MIDI → audio rendering speed: orchestrion's tinysoundfont renderer next to a baseline.

The baseline, measured in the same run on the same files, is pretty_midi's ``synthesize()``
(additive sine synthesis in numpy; it needs no fluidsynth). Both render at 22.05 kHz. Speed is
reported as x-real-time (seconds of audio per second of compute; best of ``--repeats`` runs).

Usage:

    python benchmarks/render_speed.py [--repeats 3] [--quartets 1] [--chorales 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


def best_time(run: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    times, audio = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        audio = run()
        times.append(time.perf_counter() - start)
    return min(times), audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chorales", type=int, default=2, help="how many bach-chorales pieces to add")
    parser.add_argument("--quartets", type=int, default=1, help="how many string-quartets pieces to add")
    args = parser.parse_args()

    import pretty_midi
    import torch

    from orchestrion.audio.render import render_midi
    from orchestrion.corpora import export_corpus
    from orchestrion.system import cpu_description

    sample_rate = 22050
    with tempfile.TemporaryDirectory() as folder:
        paths = export_corpus("demo", Path(folder) / "demo")
        paths += export_corpus("bach-chorales", Path(folder) / "chorales", limit=args.chorales)
        paths += export_corpus("string-quartets", Path(folder) / "quartets", limit=args.quartets)

        print(f"CPU: {cpu_description()[0]}; {os.cpu_count()} logical CPUs; torch threads {torch.get_num_threads()}")
        print(f"python {platform.python_version()}, numpy {np.__version__}, pretty_midi {pretty_midi.__version__}")
        print(f"sample rate {sample_rate} Hz, best of {args.repeats}\n")
        header = f"{'piece':<34}{'audio s':>9}{'tinysoundfont xRT':>19}{'pretty_midi sine xRT':>22}{'ratio':>8}"
        print(header)
        print("-" * len(header))
        totals = np.zeros(4)  # tinysoundfont audio s, compute s; sine audio s, compute s
        for path in paths:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a loud mix is rescaled with a warning; irrelevant here
                tsf_s, audio = best_time(lambda p=path: render_midi(p, sample_rate=sample_rate), args.repeats)
            midi = pretty_midi.PrettyMIDI(str(path))
            sine_s, sine = best_time(lambda m=midi: m.synthesize(fs=sample_rate), args.repeats)
            seconds = audio.shape[1] / sample_rate
            sine_seconds = len(sine) / sample_rate
            totals += (seconds, tsf_s, sine_seconds, sine_s)
            print(
                f"{path.stem:<34}{seconds:>9.1f}{seconds / tsf_s:>19.0f}{sine_seconds / sine_s:>22.0f}"
                f"{(seconds / tsf_s) / (sine_seconds / sine_s):>8.2f}"
            )
        seconds, tsf_s, sine_seconds, sine_s = totals
        tsf_speed, sine_speed = seconds / tsf_s, sine_seconds / sine_s
        print("-" * len(header))
        print(f"{'total':<34}{seconds:>9.1f}{tsf_speed:>19.0f}{sine_speed:>22.0f}{tsf_speed / sine_speed:>8.2f}")


if __name__ == "__main__":
    main()
