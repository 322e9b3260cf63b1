"""Shared pieces every layer may use: atomic writes, folder locks, the validating JSON reader, memory
checks, cache paths, progress bars, errors, frozen configs.

Nothing here imports another curricmusic layer.
"""
