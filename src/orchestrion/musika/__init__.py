"""Musika-style waveform generation: spectrogram autoencoders and latent GAN."""
