"""Evaluation: reconstruction quality, symbolic metrics, speed."""
