"""The one training loop every arm runs through, and the run folder it writes (checkpoints, metrics).

- :mod:`.loop`: :func:`~.loop.train_run`;
- :mod:`.checkpoint`: ``checkpoint.pt``, saved and loaded (the rest of the run folder's format is
  :mod:`curricmusic.common.run_folder`).
"""
