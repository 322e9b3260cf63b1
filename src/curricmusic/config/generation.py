"""Generation settings: the one model behind ``curricmusic generate``, an experiment's ``[generate]``
section and the runner, validated once (an impossible setting is one clear line).

A run remembers how it was meant to be sampled: its ``run.json`` records the experiment, and
:func:`curricmusic.config.run_settings.settings_for_run` starts from its ``[generate]`` section,
lays the command-line flags over it, and says where each value came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from curricmusic.common.errors import UserError
from curricmusic.common.frozen import FrozenModel
from curricmusic.music.keys import parse_key

__all__ = ["GenerationSettings", "GenerateSection", "MAX_TOKENS", "MAX_SAMPLES", "MAX_BATCH"]

#: Upper bounds of the integer settings: far above any use, low enough that nothing they size
#: overflows (the memory a setting needs is checked against the machine before sampling).
MAX_TOKENS = 1_000_000  # tokens per sample (and bars, notes, prompt bars)
MAX_SAMPLES = 100_000  # samples of one call, and candidates per sample
MAX_BATCH = 4096  # rows sampled at once


class GenerationSettings(FrozenModel):
    """Everything that decides a set of samples; recorded in the output manifest."""

    n: int = Field(4, ge=1, le=MAX_SAMPLES)
    seed: int | None = Field(None, description="None: the seed of the run being sampled")
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    max_bars: int = Field(16, ge=1, le=MAX_TOKENS)
    max_tokens: int = Field(2048, ge=8, le=MAX_TOKENS, description="beyond the model's context the newest half window is re-encoded")
    min_tokens: int = Field(0, ge=0, le=MAX_TOKENS, description="no EOS before this many tokens")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0, le=2**31 - 1)
    top_p: float = Field(0.95, gt=0, le=1)
    min_p: float = Field(0.0, ge=0, lt=1)
    grammar: bool = True
    key: str | None = None
    chromatic_allowance: float = Field(0.05, ge=0, le=1, description="probability factor of out-of-key pitches")
    pitch_range: list[int] = Field(default_factory=lambda: [21, 108], min_length=2, max_length=2)
    copy_blocking: bool = True
    max_copy_notes: int = Field(16, ge=3, le=MAX_TOKENS, description="longest span copied from training data")
    copy_penalty: float | None = Field(None, gt=0, description="subtract from logits instead of blocking")
    prompt: Path | None = None
    prompt_bars: int | None = Field(
        None, ge=1, le=MAX_TOKENS, description="None: as many of the last 4 bars as fit in half the context"
    )
    min_notes: int = Field(
        0, ge=0, le=MAX_TOKENS, description="draw a sample again (up to 4 times) while it has fewer new notes"
    )
    rerank: int = Field(1, ge=1, le=MAX_SAMPLES)
    novelty_weight: float = Field(1.0, ge=0)
    wav: bool = False
    # how the samples are drawn, not what they are meant to be: left out of the recorded settings
    # and the experiment's hash (the manifest's notes say when the step was compiled)
    compile: Literal["auto"] | bool = Field("auto", exclude=True, description="compile the decoding step: true, false or auto")

    @field_validator("key")
    @classmethod
    def _known_key(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_key(value)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _check_range(self) -> GenerationSettings:
        low, high = self.pitch_range
        if self.n * self.rerank > MAX_SAMPLES:
            raise ValueError(f"n x rerank = {self.n * self.rerank} candidates; at most {MAX_SAMPLES}")
        if not 0 <= low <= high <= 127:
            raise ValueError(f"pitch_range must be [low, high] with 0 <= low <= high <= 127, got {self.pitch_range}")
        return self


class GenerateSection(GenerationSettings):
    """An experiment's ``[generate]`` section: the samples the runner draws from each trained run.

    It is a :class:`GenerationSettings` (the same keys and bounds) except that ``n`` may be 0: an
    experiment that only trains. ``seed`` defaults to each run's own seed.
    """

    n: int = Field(4, ge=0, description="samples per run (0: none)")
