"""Audio front end: I/O, spectral transforms, soundfont rendering."""
