"""Music as data: note arrays, keys (the one key estimate), tokenizers and their grammars.

Pure music representation shared by data preparation, generation and evaluation; knows nothing
about curricula, models or experiments.
"""
