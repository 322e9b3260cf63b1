"""The one training loop every arm runs through, and the run folder it writes (checkpoints, metrics).

- :mod:`.loop`: :func:`~.loop.train_run`;
- :mod:`.checkpoint`: ``run.json``, ``metrics.jsonl``, ``checkpoint.pt`` and their readers.
"""
