"""Built-in corpora made offline from installed packages (the music21 corpus).

``list_corpora()`` describes them, ``export_corpus()`` writes multi-track MIDI files,
``render_corpus()`` renders them to 22.05 kHz stereo WAV, and ``demo_midi()`` gives tests a few
short real pieces quickly.
"""

from orchestrion.corpora.catalogue import CorpusInfo, Piece, corpus_names, corpus_pieces, list_corpora
from orchestrion.corpora.export import demo_midi, export_corpus, piece_midi, render_corpus

__all__ = [
    "CorpusInfo",
    "Piece",
    "corpus_names",
    "corpus_pieces",
    "demo_midi",
    "export_corpus",
    "list_corpora",
    "piece_midi",
    "render_corpus",
]
