"""Sampling MIDI from a trained run: decoding, logit filters, copy-blocking, reranking, output files.

- :mod:`.generate`: loading a run and the KV-cached, grammar-constrained sampling loop;
- :mod:`.filters`: temperature / top-k / top-p / min-p and the batch-independent sampler;
- :mod:`.copy_blocking`: blocks pitches that would extend a copy of the training data, using the
  copy index of :mod:`curricmusic.novelty.copy_index`;
- :mod:`.rerank`: keeps the most likely candidate among the novel ones (novelty scoring);
- :mod:`.output`: MIDI / WAV files and ``manifest.json``.
"""
