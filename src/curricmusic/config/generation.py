"""Generation settings, validated once (an impossible setting is one clear line), and rule priors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field, ValidationError, field_validator, model_validator

from curricmusic.common.errors import UserError
from curricmusic.config import FrozenModel, format_validation_error

__all__ = ["GenerationSettings", "settings_from", "key_bias"]


class GenerationSettings(FrozenModel):
    """Everything that decides a set of samples; recorded in the output manifest."""

    n: int = Field(4, ge=1)
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    max_bars: int = Field(16, ge=1)
    max_tokens: int = Field(2048, ge=8)
    min_tokens: int = Field(0, ge=0, description="no EOS before this many tokens")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    min_p: float = Field(0.0, ge=0, lt=1)
    grammar: bool = True
    key: str | None = None
    chromatic_allowance: float = Field(0.05, ge=0, le=1, description="probability factor of out-of-key pitches")
    pitch_range: list[int] = Field(default_factory=lambda: [21, 108], min_length=2, max_length=2)
    copy_blocking: bool = True
    max_copy_notes: int = Field(16, ge=3)
    copy_penalty: float | None = Field(None, gt=0, description="subtract from logits instead of blocking")
    prompt: Path | None = None
    prompt_bars: int = Field(4, ge=1)
    rerank: int = Field(1, ge=1)
    novelty_weight: float = Field(1.0, ge=0)
    wav: bool = False

    @field_validator("key")
    @classmethod
    def _known_key(cls, value: str | None) -> str | None:
        if value is not None:
            from curricmusic.music.keys import parse_key

            try:
                parse_key(value)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _check_range(self) -> GenerationSettings:
        low, high = self.pitch_range
        if not 0 <= low <= high <= 127:
            raise ValueError(f"pitch_range must be [low, high] with 0 <= low <= high <= 127, got {self.pitch_range}")
        return self


_FLAGS = {
    "n": "--n", "seed": "--seed", "max_bars": "--max-bars", "max_tokens": "--max-tokens",
    "temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p",
    "key": "--key", "rerank": "--rerank", "novelty_weight": "--novelty-weight",
    "max_copy_notes": "--max-copy-notes", "prompt_bars": "--prompt-bars", "batch_size": "--batch-size",
}  # fmt: skip


def settings_from(values: dict) -> GenerationSettings:
    """Validate CLI values; an error names the flag (``--top-p: ...``) rather than the field."""
    try:
        return GenerationSettings.model_validate(values)
    except ValidationError as exc:
        line = format_validation_error(exc, "generate")
        field = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        flag = _FLAGS.get(field)
        if flag:
            line = line.replace(f"generate: {field}:", f"{flag}:", 1)
        raise UserError(line) from None


def key_bias(tokenizer, settings: GenerationSettings) -> torch.Tensor:
    """Additive logit bias ``(V,)``: the pitch range (hard) and the key prior (soft or hard).

    Out-of-key pitches get ``log(chromatic_allowance)`` (``-inf`` when the allowance is 0); a
    minor key admits its natural, harmonic and melodic forms.
    """
    bias = np.zeros(len(tokenizer), dtype=np.float32)
    low, high = settings.pitch_range
    scale = None
    if settings.key is not None:
        from curricmusic.music.keys import parse_key, scale_pitch_classes

        key = parse_key(settings.key)
        forms = ("natural",) if key.mode == "major" else ("natural", "harmonic", "melodic")
        scale = {pc for form in forms for pc in scale_pitch_classes(key, form)}
    out_of_key = np.log(settings.chromatic_allowance) if settings.chromatic_allowance > 0 else -np.inf
    for token, index in tokenizer.vocab.items():
        prefix, _, value = token.partition("_")
        if prefix != "Pitch":
            continue
        pitch = int(value)
        if not low <= pitch <= high:
            bias[index] = -np.inf
        elif scale is not None and pitch % 12 not in scale:
            bias[index] = out_of_key
    return torch.from_numpy(bias)
