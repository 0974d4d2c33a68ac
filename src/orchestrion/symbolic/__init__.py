"""Symbolic front end: MIDI I/O, MMR representation, Music BPE, token datasets."""
