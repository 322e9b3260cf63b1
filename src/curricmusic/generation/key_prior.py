"""Rule priors over the vocabulary: the pitch range (hard) and the key (soft or hard)."""

from __future__ import annotations

import numpy as np
import torch

from curricmusic.config.generation import GenerationSettings
from curricmusic.music.keys import ScaleForm, parse_key, scale_pitch_classes
from curricmusic.music.tokenizers import Tokenizer, token_pitch

__all__ = ["key_bias"]


def key_bias(tokenizer: Tokenizer, settings: GenerationSettings) -> torch.Tensor:
    """Additive logit bias ``(V,)``: the pitch range (hard) and the key prior (soft or hard).

    Out-of-key pitches get ``log(chromatic_allowance)`` (``-inf`` when the allowance is 0); a
    minor key admits its natural, harmonic and melodic forms. Every token that starts a note
    (``Pitch`` or ``NoteOn``) is biased; a ``NoteOff`` only ends one and is left alone.
    """
    bias = np.zeros(len(tokenizer), dtype=np.float32)
    low, high = settings.pitch_range
    scale = None
    if settings.key is not None:
        key = parse_key(settings.key)
        forms: tuple[ScaleForm, ...] = ("natural",) if key.mode == "major" else ("natural", "harmonic", "melodic")
        scale = {pc for form in forms for pc in scale_pitch_classes(key, form)}
    out_of_key = np.log(settings.chromatic_allowance) if settings.chromatic_allowance > 0 else -np.inf
    for token, index in tokenizer.vocab.items():
        pitch = token_pitch(token)
        if pitch is None:
            continue
        if not low <= pitch <= high:
            bias[index] = -np.inf
        elif scale is not None and pitch % 12 not in scale:
            bias[index] = out_of_key
    return torch.from_numpy(bias)
