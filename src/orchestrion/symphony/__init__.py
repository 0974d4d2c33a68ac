"""SymphonyNet-style symbolic generation: linear transformer with 3-D positions."""
