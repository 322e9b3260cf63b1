"""Shared pieces every layer may use: atomic writes, cache paths, progress bars, errors, frozen configs.

Nothing here imports another curricmusic layer.
"""
