"""What FAD and the symbolic metrics say on sets whose relation is known, and how fast FAD embeds.

Built from the built-in corpora (rendered with the default SoundFont): a reference set of Bach
chorales, other chorales (same style, different pieces), string-quartet movements (other music,
other instruments), and the reference itself degraded (white noise, low-pass). A useful metric
ranks them: identical < other chorales ≈ split-half < degraded / quartets. Also prints the
embedding speed (x real time) of ``spectral-stats`` and of VGGish (random weights: the speed
does not depend on them) on this machine.

Usage:

    python benchmarks/evaluation_sanity.py [--chorales 12] [--quartets 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from orchestrion.audio.io import SAMPLE_RATE, load_audio, save_audio
from orchestrion.corpora import render_corpus
from orchestrion.evaluation.embedders import SpectralStatsEmbedder
from orchestrion.evaluation.fad import evaluate_fad
from orchestrion.evaluation.symbolic_metrics import SCALAR_FEATURES, evaluate_symbolic
from orchestrion.evaluation.vggish import VGGish, vggish_log_mel


def _write_transformed(sources: list[Path], folder: Path, transform, seconds: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in sources:
        audio = load_audio(path)[:, : int(seconds * SAMPLE_RATE)]
        save_audio(folder / path.name, np.clip(transform(audio), -1, 1), subtype="FLOAT")
    return folder


def _low_pass(cutoff_hz: float):
    def apply(audio: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft(audio, axis=-1)
        spectrum[..., np.fft.rfftfreq(audio.shape[-1], 1 / SAMPLE_RATE) > cutoff_hz] = 0
        return np.fft.irfft(spectrum, n=audio.shape[-1], axis=-1)

    return apply


def _speed(embed, sample_rate: int, excerpts: int = 64) -> float:
    batch = np.random.default_rng(0).uniform(-0.5, 0.5, (excerpts, sample_rate)).astype(np.float32)
    embed(batch[:4])
    start = time.perf_counter()
    embed(batch)
    return excerpts / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chorales", type=int, default=12, help="chorales per set (reference and other)")
    parser.add_argument("--quartets", type=int, default=2, help="string-quartet movements")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds kept from each piece")
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        chorales = render_corpus("bach-chorales", root / "chorales", limit=2 * args.chorales)
        quartets = render_corpus("string-quartets", root / "quartets", limit=args.quartets)
        keep = lambda audio: audio  # noqa: E731
        rng = np.random.default_rng(0)
        sets = {
            "reference (itself)": _write_transformed(chorales[: args.chorales], root / "ref", keep, args.seconds),
            "other chorales": _write_transformed(chorales[args.chorales :], root / "other", keep, args.seconds),
            "string quartets": _write_transformed(quartets, root / "quartets_cut", keep, args.seconds * 3),
            "reference + noise −40 dB": _write_transformed(
                chorales[: args.chorales], root / "noise", lambda a: a + 0.01 * rng.standard_normal(a.shape),
                args.seconds,
            ),
            "reference low-passed 4 kHz": _write_transformed(
                chorales[: args.chorales], root / "lowpass", _low_pass(4000.0), args.seconds
            ),
        }
        reference = sets["reference (itself)"]
        print(f"FAD, spectral-stats embedder, 1 s excerpts ({args.chorales} chorales × {args.seconds:g} s reference)")
        print(f"{'generated set':<28} {'FAD':>10} {'excerpts':>9}")
        split = None
        for label, folder in sets.items():
            report = evaluate_fad(reference, folder, progress=False)
            split = report.split_half_fad
            print(f"{label:<28} {report.fad:>10.2f} {report.generated_excerpts:>9}")
        print(f"{'split-half of the reference':<28} {split:>10.2f}")

        midi = root / "chorales" / "midi"
        ref_midi, other_midi = root / "ref_midi", root / "other_midi"
        for folder, files in ((ref_midi, chorales[: args.chorales]), (other_midi, chorales[args.chorales :])):
            folder.mkdir()
            for wav in files:
                (folder / f"{wav.stem}.mid").write_bytes((midi / f"{wav.stem}.mid").read_bytes())
        print("\nsymbolic metrics against the reference chorales")
        print(
            f"{'generated set':<18} {'mean OA':>8} {'min OA (feature)':>34} {'rel. OA PCH':>11} {'rel. OA PCT':>11}"
            f" {'PCH JSD':>8} {'instr. JSD':>10}"
        )
        quartet_midi = root / "quartets" / "midi"
        comparisons = (("itself", ref_midi), ("other chorales", other_midi), ("string quartets", quartet_midi))
        for label, folder in comparisons:
            report = evaluate_symbolic(ref_midi, folder, progress=False)
            values = {name: report.overlapping_area[name] for name, _, _ in SCALAR_FEATURES}
            worst = min(values, key=values.get)
            print(
                f"{label:<18} {np.nanmean(list(values.values())):>8.3f} {values[worst]:>8.3f} ({worst}){'':>4}"
                f" {report.relative_overlapping_area['pitch_class_histogram']:>11.3f}"
                f" {report.relative_overlapping_area['pitch_class_transitions']:>11.3f}"
                f" {report.pitch_class_histogram_jsd:>8.3f} {report.instrument_usage_jsd:>10.3f}"
            )

    print(f"\nembedding speed on {torch.get_num_threads()} threads (x real time, 1 s excerpts, batch of 64)")
    stats = SpectralStatsEmbedder()
    print(f"spectral-stats: {_speed(stats.embed, stats.sample_rate):8.1f}x")
    model = VGGish().eval()

    def vggish_embed(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(vggish_log_mel(torch.from_numpy(batch))[:, None, :96]).numpy()

    print(f"vggish:         {_speed(vggish_embed, 16000):8.1f}x")


if __name__ == "__main__":
    main()
