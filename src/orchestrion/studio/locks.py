"""What several tabs must not do at the same time, and the locks that make them take turns.

The server answers every tab from its own thread, but two things it uses are not thread-safe:
the Musika modules (a stream or a reconstruction sets the noise source of their AddNoise layers
for the duration of a pass) and matplotlib (its text layout shares parser state). Each is used
under a lock, for as short as possible: one block of audio, one figure.
"""

from __future__ import annotations

import threading
import weakref

PLOTTING = threading.Lock()  # every figure the studio draws (spectrograms, piano rolls)

_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(autoencoder) -> threading.Lock:
    """The lock of a Musika model, shared by every user of its autoencoder (and of the GAN holding it).

    The Musika modules are not safe to run from two threads at once: a stream and a reconstruction
    set the noise source of the modules' AddNoise layers for the duration of a pass. Two tabs on
    one model therefore take turns, a block (milliseconds) at a time.
    """
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(autoencoder.level1, threading.Lock())
