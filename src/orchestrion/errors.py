"""One error family for everything a user can get wrong.

The CLI turns an :class:`OrchestrionError` into a one-line message and exit code 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class OrchestrionError(Exception):
    """Base class of all user-facing errors (bad input, bad checkpoint, bad config)."""


class ConfigError(OrchestrionError):
    """A configuration file or value is invalid."""


class CheckpointError(OrchestrionError):
    """A checkpoint is missing, truncated, tampered with or does not match its config."""


class AudioError(OrchestrionError):
    """An audio file cannot be read or written, or its content is unusable."""


class MidiError(OrchestrionError):
    """A MIDI file cannot be read or written, or holds nothing representable."""


class DataError(OrchestrionError):
    """A dataset folder or file is missing, empty or malformed."""
