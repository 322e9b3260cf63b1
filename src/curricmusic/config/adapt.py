"""The adaptation phase's settings: new styles, few-shot sizes, budget, learning rates and the rules
that choose among them (see README "Adaptation")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from curricmusic.common.frozen import FrozenModel
from curricmusic.config.curriculum import MidiDirStage, Music21Stage

__all__ = ["LR_SCHEDULES", "ADAPT_LR_METRICS", "StyleConfig", "AdaptLRRule", "AdaptSection"]

LR_SCHEDULES = ("cosine", "constant", "wsd")
StyleConfig = Annotated[Music21Stage | MidiDirStage, Field(discriminator="source")]
#: Adaptation measures a learning rate may be chosen by (all on the style's validation split).
ADAPT_LR_METRICS = ("auc_val", "final_val", "best_val")


class AdaptLRRule(FrozenModel):
    """How each model's adaptation learning rate is chosen when ``[adapt] lr`` lists several: the
    rate with the lowest mean over seeds of ``metric`` on the style's *validation* split, for every
    model alike (from-scratch included), per style and (``per_shots``) per shot size. Ties go to
    the smaller rate; the test split never enters."""

    metric: Literal[ADAPT_LR_METRICS] = "auc_val"  # type: ignore[valid-type]
    per_shots: bool = Field(True, description="choose per shot size (else one rate per model and style, on the mean over shot sizes)")

    def text(self) -> str:
        where = "style and shot size" if self.per_shots else "style (mean over shot sizes)"
        return (
            f"per model, {where}: the learning rate with the lowest mean over seeds of {self.metric} on the style's "
            "validation split; the same rule for every model, from-scratch included; ties go to the smaller rate; "
            "rates with a failed or missing seed are chosen only if every rate has such a gap; the test split is "
            "never used to choose"
        )


class AdaptSection(FrozenModel):
    """The adaptation phase: every arm's final model, and a from-scratch model with the seed's
    initial weights, fine-tuned on each style that no pretraining stage contains, from ``shots``
    pieces each (nested subsets, seeded by the run seed), with one budget and schedule for all.

    ``style`` (one) or ``styles`` (several) are stages like a curriculum's (``source = "music21"``
    with a ``collection``, or ``source = "midi_dir"`` with a ``path``); each is prepared with the
    experiment curriculum's tokenizer and split settings. ``lr`` may list several rates: each
    model's is then chosen by ``lr_rule`` on the style's validation split. The runs share
    ``train``'s batch size, window length, weight decay and clipping.
    """

    styles: list[StyleConfig] = Field(min_length=1, description="the new styles (``style = {...}`` for one)")
    shots: list[int] = Field(min_length=1, description="pieces of the style's training split per adaptation run")
    tokens: int = Field(gt=0, description="budget of every adaptation run in real tokens")
    lr: float | list[float] = Field(3e-4, description="peak learning rate, or several: each model's is chosen by lr_rule")
    lr_rule: AdaptLRRule = Field(default_factory=AdaptLRRule, description="how each model's learning rate is chosen when lr lists several")
    lr_schedule: Literal[LR_SCHEDULES] = "constant"  # type: ignore[valid-type]
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    decay_fraction: float = Field(0.2, gt=0, le=1)
    eval_every: int = Field(10, ge=1, description="steps between validation evaluations on the style")
    log_every: int = Field(5, ge=1)
    checkpoint_every: int = Field(50, ge=1)
    report_steps: list[int] = Field(default_factory=list, description="steps after which each run's loss is reported")
    zero_shot: bool = Field(False, description="score each style's validation split at every pretraining evaluation")
    target_loss: float | None = Field(
        None, gt=0, description="style val loss that counts as reached (default: the rule of target_model and target_at)"
    )
    target_model: str = Field("scratch", description="the model whose mean validation loss fixes the target level")
    target_at: float = Field(0.5, gt=0, le=1, description="the share of the budget at which target_model's loss is read")
    init_from: Path | None = Field(None, description="also adapt this model folder, as the model 'shared'")

    @model_validator(mode="before")
    @classmethod
    def _one_or_more_styles(cls, data: Any) -> Any:
        """``style = {...}`` is ``styles = [{...}]``; a style without a name is named after its
        collection (or "style")."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "style" in data:
            if "styles" in data:
                raise ValueError("give style (one) or styles (several), not both")
            data["styles"] = [data.pop("style")]
        styles = data.get("styles")
        if isinstance(styles, list):
            named = []
            for style in styles:
                if isinstance(style, dict) and "name" not in style:
                    collection = style.get("collection")
                    style = {**style, "name": collection if isinstance(collection, str) and collection else "style"}
                named.append(style)
            data["styles"] = named
        return data

    @field_validator("shots")
    @classmethod
    def _shots(cls, shots: list[int]) -> list[int]:
        if any(k < 1 for k in shots) or len(set(shots)) != len(shots):
            raise ValueError(f"shots must be distinct piece counts >= 1, got {shots}")
        return sorted(shots)

    @model_validator(mode="after")
    def _check(self) -> AdaptSection:
        if self.lr_schedule == "wsd" and self.warmup_fraction + self.decay_fraction > 1:
            raise ValueError("warmup_fraction + decay_fraction exceed 1: the wsd decay would start inside the warmup")
        rates = self.learning_rates
        if not rates or any(v <= 0 for v in rates) or len(set(rates)) != len(rates):
            raise ValueError(f"lr must be a positive number or a list of distinct ones (got {self.lr})")
        names = [style.name for style in self.styles]
        if len(set(names)) != len(names):
            raise ValueError(f"styles: names must be unique (got {', '.join(names)}); give each style a name")
        if any(k < 1 for k in self.report_steps) or len(set(self.report_steps)) != len(self.report_steps):
            raise ValueError(f"report_steps must be distinct step counts >= 1, got {self.report_steps}")
        return self

    @property
    def style(self) -> Music21Stage | MidiDirStage:
        """The first style (the only one in most experiments)."""
        return self.styles[0]

    @property
    def learning_rates(self) -> list[float]:
        return list(self.lr) if isinstance(self.lr, list) else [self.lr]

    def style_named(self, name: str) -> Music21Stage | MidiDirStage:
        for style in self.styles:
            if style.name == name:
                return style
        raise KeyError(name)

    def total_steps(self, tokens_per_step: int) -> int:
        return -(-self.tokens // tokens_per_step)
