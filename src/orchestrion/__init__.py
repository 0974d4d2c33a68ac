"""Orchestrion: Musika-style waveform generation and SymphonyNet-style symbolic generation."""

__version__ = "0.1.0"
