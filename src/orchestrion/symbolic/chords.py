"""One chord label per measure, vectorised over all measures (SymphonyNet §2.3).

This re-implements, with NumPy over whole pieces, the scoring of chorder 0.1.4's
``Dechorder.get_chord_quality(notes, start=0, end=min(L, 8))`` as the reference preprocessing
calls it (``consider_bass=False``). chorder itself is not used: it loops over Python note objects
per measure and requires miditoolkit. The result is identical (tests compare against a literal
per-note transcription of chorder on random measures):

1. Input notes of a measure: non-drum, pitch 21-108, quantised onset ``o < 8`` 32nds; each spans
   ``[0, 8]`` if ``o == 0`` else ``[o, o + D]``, clipped to the window ``[0, W]``, ``W = min(L, 8)``.
2. ``chroma[pc]`` = summed clipped span per pitch class; bass = lowest pitch whose own summed span
   is at least ``W / 8``.
3. For every root with ``chroma[root] > 0`` and each template (M, m, o, +, sus2, sus4, in this order)
   the score is the dot product of the rotated chroma with the template; the first strictly
   largest positive score wins (roots ascending, templates in order).
4. A best score below ``10 W`` means "no chord" (``HNA``).
5. Bass re-interpretation: o→7 / o7, M→m7, m→M7 / /o7, sus2↔sus4 depending on the interval from
   bass to root; then M→M7 or 7 by the stronger of the major/minor seventh, m→m7 if the minor
   seventh sounds.
"""

from __future__ import annotations

import numpy as np

from orchestrion.symbolic.mmr_vocab import CHORD_QUALITIES, N_CHORDS

# Template order is chorder's iteration order; it decides ties.
_TEMPLATE_NAMES = ("M", "m", "o", "+", "sus2", "sus4")
_TEMPLATES = np.array(
    [
        [10, -2, -1, -2, 10, -5, -2, 10, -2, -1, -2, 0],
        [10, -2, -1, 10, -2, -5, -2, 10, -1, -2, 0, -2],
        [10, -2, -1, 10, -2, -1, 10, -2, -2, 1, -1, -2],
        [10, -2, -1, -2, 10, -1, -2, -2, 10, -1, -2, 0],
        [10, -2, 5, -2, -1, -5, -2, 5, -2, -1, -2, 0],
        [10, -2, -1, -2, -5, 5, -2, 5, -2, -1, -2, 0],
    ],
    dtype=np.int64,
)
# _SCORE_MATRIX[pc, root * 6 + q] = template q weight of pitch class pc relative to root.
_PC = np.arange(12)
_SCORE_MATRIX = np.stack(
    [_TEMPLATES[q, (_PC - root) % 12] for root in range(12) for q in range(len(_TEMPLATE_NAMES))], axis=1
)

# Internal quality codes (chorder names, with '7' = dominant seventh).
_Q = {name: i for i, name in enumerate(("M", "m", "o", "+", "sus2", "sus4", "7", "M7", "m7", "o7", "/o7"))}
# Map internal code -> index in the vocabulary's quality order (reference renames '7' to 'D7').
_VOCAB_QUALITY = np.array(
    [CHORD_QUALITIES.index("D7" if name == "7" else name) for name in sorted(_Q, key=_Q.get)], dtype=np.int64
)

CHORD_WINDOW = 8  # first quarter note, in 32nds
MIN_CHORD_PITCH, MAX_CHORD_PITCH = 21, 108


def measure_chords(
    measure: np.ndarray,
    pos: np.ndarray,
    dur: np.ndarray,
    pitch: np.ndarray,
    is_drum: np.ndarray,
    bar_lengths: np.ndarray,
) -> np.ndarray:
    """Chord index per measure (0..132 in vocabulary order; 132 = ``HNA``).

    Args:
        measure: (N,) measure index of each note, 0..M-1.
        pos: (N,) onset inside its measure in 32nds.
        dur: (N,) quantised duration in 32nds (1..32).
        pitch: (N,) MIDI pitch.
        is_drum: (N,) bool, drum notes are ignored.
        bar_lengths: (M,) measure lengths L in 32nds.

    Returns:
        (M,) int64 chord indices.
    """
    n_measures = len(bar_lengths)
    window = np.minimum(np.asarray(bar_lengths, dtype=np.int64), CHORD_WINDOW)
    sel = (~is_drum) & (pitch >= MIN_CHORD_PITCH) & (pitch <= MAX_CHORD_PITCH) & (pos < CHORD_WINDOW)
    m, o, d, p = measure[sel], pos[sel].astype(np.int64), dur[sel].astype(np.int64), pitch[sel].astype(np.int64)
    w = window[m]
    # o < L always holds, so o < w and every span is at least one 32nd.
    span = np.where(o == 0, w, np.minimum(w, o + d) - o)

    chroma = np.zeros((n_measures, 12), dtype=np.int64)
    np.add.at(chroma, (m, p % 12), span)
    per_pitch = np.zeros((n_measures, 128), dtype=np.int64)
    np.add.at(per_pitch, (m, p), span)
    bass_ok = 8 * per_pitch >= window[:, None]
    has_bass = bass_ok.any(axis=1)
    bass = np.argmax(bass_ok, axis=1) % 12

    scores = chroma @ _SCORE_MATRIX  # (M, 72)
    root_sounding = np.repeat(chroma > 0, len(_TEMPLATE_NAMES), axis=1)
    scores = np.where(root_sounding, scores, 0)
    best = np.argmax(scores, axis=1)
    best_score = scores[np.arange(n_measures), best]
    root, quality = np.divmod(best, len(_TEMPLATE_NAMES))

    interval = (root - bass) % 12
    rebass = np.full(n_measures, -1)
    for old, step, new in (
        ("o", 4, "7"), ("o", 3, "o7"), ("M", 3, "m7"), ("m", 4, "M7"), ("m", 3, "/o7"),
        ("sus2", 5, "sus4"), ("sus4", 7, "sus2"),
    ):
        hit = has_bass & (rebass < 0) & (quality == _Q[old]) & (interval == step)
        rebass = np.where(hit, _Q[new], rebass)
    changed = rebass >= 0
    root = np.where(changed, bass, root)
    quality = np.where(changed, rebass, quality)

    rows = np.arange(n_measures)
    maj7 = chroma[rows, (root + 11) % 12]
    min7 = chroma[rows, (root + 10) % 12]
    is_major = quality == _Q["M"]
    quality = np.where(is_major & (maj7 > 0) & (maj7 > min7), _Q["M7"], quality)
    quality = np.where(is_major & (min7 > 0) & (min7 > maj7), _Q["7"], quality)
    quality = np.where((quality == _Q["m"]) & (min7 > 0), _Q["m7"], quality)

    no_chord = best_score < 10 * window
    chord = root * len(CHORD_QUALITIES) + _VOCAB_QUALITY[quality]
    return np.where(no_chord, N_CHORDS - 1, chord)
