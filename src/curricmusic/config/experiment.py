"""Experiment files: a curriculum, a model, one training budget, and the arms that compete on it.

Every arm trains with the same model, token budget and learning-rate schedule; arms differ only
in how the curriculum sampler fills each batch. Baselines are arms too::

    [[arms]]                          [[arms]]
    name = "pedagogy"                 name = "random"
    pacing = "fixed"                  pacing = "random"
    stage_fractions = [0.1, 0.1, 0.2, 0.6]
    replay = 0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from curricmusic.common.errors import UserError
from curricmusic.common.frozen import FrozenModel, load_toml, validate
from curricmusic.config.adapt import ADAPT_LR_METRICS, LR_SCHEDULES, AdaptLRRule, AdaptSection
from curricmusic.config.arms import PACING_NAMES, ArmConfig
from curricmusic.config.claims import CLAIM_METRICS, Claim
from curricmusic.config.curriculum import (
    CurriculumConfig,
    MidiDirStage,
    Music21Stage,
    StageConfig,
    load_curriculum,
)
from curricmusic.config.generation import GenerateSection

__all__ = [
    "ADAPT_LR_METRICS",
    "AdaptLRRule",
    "CLAIM_METRICS",
    "Claim",
    "ModelSection",
    "TrainSection",
    "ArmConfig",
    "GenerateSection",
    "NoveltySection",
    "ProbeSection",
    "SlurmSection",
    "AdaptSection",
    "SCRATCH",
    "SHARED",
    "ExperimentConfig",
    "Experiment",
    "load_experiment",
    "experiment_from_config",
    "check_new_style",
    "style_curriculum",
    "PACING_NAMES",
    "LR_SCHEDULES",
]

#: The name of the from-scratch model of the adaptation phase (no arm may take it).
SCRATCH = "scratch"
#: The name of the ``[adapt] init_from`` model in the adaptation phase (no arm may take it then).
SHARED = "shared"


class ModelSection(FrozenModel):
    """A named size (tiny, small, base) and optional explicit overrides."""

    size: Literal["tiny", "small", "base"] = "small"
    d_model: int | None = Field(None, ge=8)
    n_layers: int | None = Field(None, ge=1)
    n_heads: int | None = Field(None, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class TrainSection(FrozenModel):
    """The budget and optimisation shared by every arm.

    ``batch_size`` is the global number of windows per optimizer step, whatever the number of
    devices; ``micro_batch_size`` is what one device runs at once (gradient accumulation makes up
    the difference), so the same experiment trains identically on a laptop and on 8 GPUs.
    """

    tokens: int = Field(gt=0, description="training budget in real tokens (windows x seq_len x steps)")
    seq_len: int = Field(256, ge=8)
    batch_size: int = Field(16, ge=1)
    micro_batch_size: int | None = Field(None, ge=1)
    lr: float | list[float] = Field(3e-4, description="peak learning rate, or several: a sweep (a cell each)")
    lr_schedule: Literal[LR_SCHEDULES] = "wsd"  # type: ignore[valid-type]
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="the floor of cosine and of the wsd decay")
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: the final share of the steps that decays")
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    eval_every: int = Field(50, ge=1, description="steps between validation evaluations")
    eval_stride: int | None = Field(
        None, ge=1, description="tokens between held-out windows (default seq_len // 2); each token is scored once"
    )
    eval_pieces: int | None = Field(
        None,
        ge=1,
        description="in-training evaluations score a fixed, seeded subset of at most this many held-out pieces per "
        "stage (every token of those pieces); the last evaluation scores every held-out token (None: always all)",
    )
    measure_key_share: bool = Field(
        False, description="at every evaluation, the key share of each stage's held-out pieces (metrics.jsonl key_share)"
    )
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    tensorboard: bool = False
    init_from: Path | None = Field(
        None, description="every arm starts from this model folder (an export, a Hugging Face GPT-NeoX folder, a run's model/)"
    )
    # How the steps run, not what they compute: left out of the experiment's hash and its recorded
    # config (run.json records what was used). "auto": compiled where it pays (a long enough run,
    # a working C++ compiler); --compile/--no-compile on the command line overrides it.
    compile: Literal["auto"] | bool = Field(
        "auto", exclude=True, description="torch.compile the training step: true, false or auto"
    )

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def total_steps(self) -> int:
        return -(-self.tokens // self.tokens_per_step)

    @property
    def stride(self) -> int:
        return self.eval_stride or max(1, self.seq_len // 2)

    @model_validator(mode="after")
    def _check(self) -> TrainSection:
        values = self.lr if isinstance(self.lr, list) else [self.lr]
        if not values or any(v <= 0 for v in values) or len(set(values)) != len(values):
            raise ValueError(f"lr must be a positive number or a list of distinct ones (got {self.lr})")
        if self.eval_stride is not None and self.eval_stride > self.seq_len:
            raise ValueError(f"eval_stride {self.eval_stride} exceeds seq_len {self.seq_len}: tokens would go unscored")
        if self.lr_schedule == "wsd" and self.warmup_fraction + self.decay_fraction > 1:
            raise ValueError("warmup_fraction + decay_fraction exceed 1: the wsd decay would start inside the warmup")
        return self


class NoveltySection(FrozenModel):
    """How samples are scored for closeness to the training data (docs/guides/novelty.md)."""

    embedder: str = "clap:laion/larger_clap_music"
    fallback: bool = True  # no CLAP weights: use audio-features and say so in the report
    bank_stages: list[str] | None = None  # stages whose training pieces form the bank (default all)
    max_seconds: float | None = Field(60.0, gt=0, description="audio rendered per piece (None: all)")
    # rho flag: None = calibrated, the flag_quantile of the held-out pieces' own rho; used only when
    # the embedder places known copies closer than held-out music (probe AUC >= min_probe_auc)
    rho_threshold: float | None = Field(None, gt=0)
    flag_quantile: float = Field(0.02, gt=0, lt=0.5)
    probe_copies: int = Field(16, ge=0, description="training pieces transposed and re-timed to test the embedder")
    min_probe_auc: float = Field(0.9, ge=0.5, le=1.0)
    max_copied_bars: float = Field(4.0, gt=0)
    tau_quantile: float = Field(0.1, gt=0, lt=1)
    ct_min_cell: int = Field(10, ge=2, description="generated samples a cell needs to enter C_T (the paper: 20)")


class ProbeSection(FrozenModel):
    """The linear probe of each finished run (key, mode, meter of held-out pieces; docs/guides/probes.md)."""

    enabled: bool = True
    layers: bool = Field(False, description="also probe every layer (embedding, each block), not only the final one")
    at_boundaries: bool = Field(
        False, description="save the model where the stage being learned changes, and probe it there (expectation reader, key share)"
    )


class SlurmSection(FrozenModel):
    """Resources of each (arm, seed) job under ``run --launcher slurm`` (submitit parameters)."""

    partition: str | None = None
    gpus_per_node: int = Field(1, ge=0)
    cpus_per_task: int = Field(8, ge=1)
    mem_gb: int = Field(32, ge=1)
    timeout_min: int = Field(24 * 60, ge=1)


class ExperimentConfig(FrozenModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str = ""
    curriculum: Path
    prepared: Path | None = None  # default: the cache folder of the curriculum
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    target_loss: float | None = Field(
        None, gt=0, description="val loss that counts as 'reached' (default: the random arm's mean at half the budget)"
    )
    model: ModelSection = Field(default_factory=ModelSection)
    train: TrainSection
    arms: list[ArmConfig] = Field(min_length=1)
    generate: GenerateSection = Field(default_factory=GenerateSection)
    novelty: NoveltySection = Field(default_factory=NoveltySection)
    probe: ProbeSection = Field(default_factory=ProbeSection)
    slurm: SlurmSection = Field(default_factory=SlurmSection)
    adapt: AdaptSection | None = None  # absent: no adaptation phase
    claims: list[Claim] = Field(default_factory=list, description="the confirmatory comparisons, declared before the run")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        if any(seed < 0 for seed in seeds):
            raise ValueError(f"seeds must be >= 0, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        names = [arm.name for arm in self.arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(repeated)}")
        by_name = {arm.name: arm for arm in self.arms}
        for index, arm in enumerate(self.arms):
            if arm.match is None:
                continue
            matched = by_name.get(arm.match)
            if matched is None:
                raise ValueError(f"arms.{index}.match: no arm named {arm.match!r}; arms are: {', '.join(names)}")
            if not matched.options.matchable:
                raise ValueError(
                    f"arms.{index}.match: arm {arm.match!r} has pacing {matched.pacing!r}, which matches another arm "
                    "itself; match an arm that orders the data"
                )
            if matched.options.adaptive:  # its tokens per stage come from its finished run of the same seed
                if names.index(arm.match) > index:
                    raise ValueError(
                        f"arms.{index}.match: arm {arm.match!r} ({matched.pacing}) learns its stage boundaries while it "
                        "trains, so its run must come first: list it before this arm"
                    )
                if len(self.learning_rates(arm.match)) > 1:
                    raise ValueError(
                        f"arms.{index}.match: arm {arm.match!r} ({matched.pacing}) sweeps learning rates; an arm that "
                        "matches an adaptive arm needs one run per seed to read: give it one lr"
                    )
        train = self.train
        for index, arm in enumerate(self.arms):
            problem = arm.options.check_train(train.seq_len, train.total_steps)
            if problem:
                raise ValueError(f"arms.{index}.{problem}")
        if train.total_steps < train.eval_every:
            raise ValueError(
                f"train.tokens = {train.tokens} gives {train.total_steps} steps of "
                f"{train.tokens_per_step} tokens, fewer than eval_every = {train.eval_every}: "
                "raise the budget or evaluate more often"
            )
        if train.micro_batch_size and train.batch_size % train.micro_batch_size:
            raise ValueError(
                f"train.batch_size {train.batch_size} is not a multiple of micro_batch_size {train.micro_batch_size}"
            )
        if self.adapt is not None:
            if SCRATCH in names:
                raise ValueError(f"arms: {SCRATCH!r} names the from-scratch model of [adapt]; rename the arm")
            if self.adapt.init_from is not None and SHARED in names:
                raise ValueError(f"arms: {SHARED!r} names the adapt.init_from model of [adapt]; rename the arm")
            steps = self.adapt.total_steps(train.tokens_per_step)
            if steps < self.adapt.eval_every:
                raise ValueError(
                    f"adapt.tokens = {self.adapt.tokens} gives {steps} steps of {train.tokens_per_step} tokens, "
                    f"fewer than adapt.eval_every = {self.adapt.eval_every}: raise the budget or evaluate more often"
                )
            late = [k for k in self.adapt.report_steps if k > steps or k % self.adapt.eval_every]
            if late:
                raise ValueError(
                    f"adapt.report_steps: {late[0]} is not an evaluation step (multiples of eval_every = "
                    f"{self.adapt.eval_every}, up to the {steps} steps of a run)"
                )
            if self.adapt.target_model not in [*names, SCRATCH]:
                raise ValueError(f"adapt.target_model: no model {self.adapt.target_model!r}; models are: {', '.join([*names, SCRATCH])}")
        self._check_claims(names)
        return self

    def _check_claims(self, names: list[str]) -> None:
        """Every declared claim names models, a style and a shot size the experiment has."""
        seen = set()
        for index, claim in enumerate(self.claims):
            where = f"claims.{index}"
            models = [*names, SCRATCH] if claim.phase == "adaptation" else names
            for key in ("arm", "against"):
                if getattr(claim, key) not in models:
                    raise ValueError(f"{where}.{key}: no model {getattr(claim, key)!r}; models are: {', '.join(models)}")
            if claim.phase == "adaptation":
                if self.adapt is None:
                    raise ValueError(f"{where}: an adaptation claim needs an [adapt] section")
                styles = [s.name for s in self.adapt.styles]
                if claim.style is None and len(styles) > 1:
                    raise ValueError(f"{where}.style: the experiment adapts to {', '.join(styles)}; name one")
                if claim.style is not None and claim.style not in styles:
                    raise ValueError(f"{where}.style: no style {claim.style!r}; styles are: {', '.join(styles)}")
                if claim.shots is None and len(self.adapt.shots) > 1:
                    raise ValueError(f"{where}.shots: the experiment adapts from {self.adapt.shots} pieces; name one")
                if claim.shots is not None and claim.shots not in self.adapt.shots:
                    raise ValueError(f"{where}.shots: {claim.shots} is not one of adapt.shots {self.adapt.shots}")
            identity = (claim.arm, claim.against, claim.metric, claim.phase, claim.style, claim.shots)
            if identity in seen:
                raise ValueError(f"{where}: declared twice")
            seen.add(identity)

    def claim_family(self) -> list[Claim]:
        """The declared claims with their style and shot size filled in where the experiment has one."""
        if self.adapt is None:
            return list(self.claims)
        style, shots = self.adapt.styles[0].name, self.adapt.shots[0]
        return [
            c.model_copy(update={"style": c.style or style, "shots": c.shots or shots}) if c.phase == "adaptation" else c
            for c in self.claims
        ]

    def arm(self, name: str) -> ArmConfig:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise UserError(f"experiment {self.name!r} has no arm {name!r}; arms are: {', '.join(a.name for a in self.arms)}")

    def learning_rates(self, name: str) -> list[float]:
        """The peak learning rates an arm trains with: its own ``lr``, else ``train.lr``."""
        value = self.arm(name).lr
        value = self.train.lr if value is None else value
        return list(value) if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Experiment:
    """A validated experiment with its curricula loaded (the one the file names, and per-arm ones)."""

    config: ExperimentConfig
    source: str
    curriculum: CurriculumConfig
    arm_curricula: dict[str, CurriculumConfig]
    adapt_curricula: dict[str, CurriculumConfig] | None = None  # each [adapt] style as a one-stage curriculum

    @property
    def adapt_curriculum(self) -> CurriculumConfig | None:
        """The first [adapt] style's curriculum (the only one in most experiments)."""
        return next(iter(self.adapt_curricula.values())) if self.adapt_curricula else None


def _resolve(path: Path | str, base: Path) -> Path:
    return (base / Path(path).expanduser()).resolve()


def load_experiment(path: str | Path) -> Experiment:
    """Load an experiment TOML and the curricula it names; check them against each other."""
    path = Path(path)
    data = load_toml(path)
    base = path.parent
    for key in ("curriculum", "prepared"):
        if isinstance(data.get(key), str):
            data[key] = _resolve(data[key], base)
    generate = data.get("generate")
    if isinstance(generate, dict) and isinstance(generate.get("prompt"), str):
        generate["prompt"] = _resolve(generate["prompt"], base)
    for arm in data.get("arms", []) if isinstance(data.get("arms"), list) else []:
        if isinstance(arm, dict) and isinstance(arm.get("curriculum"), str):
            arm["curriculum"] = _resolve(arm["curriculum"], base)
    for section in ("train", "adapt"):  # init_from: relative to the experiment file
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get("init_from"), str):
            table["init_from"] = _resolve(table["init_from"], base)
    adapt = data.get("adapt")
    more = adapt.get("styles") if isinstance(adapt, dict) else None
    styles = [adapt.get("style"), *(more if isinstance(more, list) else [])] if isinstance(adapt, dict) else []
    for style in styles:
        if isinstance(style, dict) and isinstance(style.get("path"), str):
            style["path"] = _resolve(style["path"], base)
    return experiment_from_config(validate(ExperimentConfig, data, str(path)), str(path))


def experiment_from_config(config: ExperimentConfig, path: str) -> Experiment:
    """Load the curricula a validated config names and check them against each other (``path``
    names the config in messages: its TOML, or an experiment folder's ``experiment.json``)."""
    if config.generate.prompt is not None and not config.generate.prompt.is_file():
        raise UserError(f"{path}: generate.prompt: MIDI file {str(config.generate.prompt)!r} does not exist")
    for key, folder in (("train.init_from", config.train.init_from), ("adapt.init_from", config.adapt.init_from if config.adapt else None)):
        if folder is not None and not (Path(folder) / "config.json").is_file():
            raise UserError(
                f"{path}: {key}: {str(folder)!r} is not a model folder (no config.json); expected a folder written by "
                "`curricmusic export`, a Hugging Face GPT-NeoX folder, or a run's model/ folder"
            )

    def curriculum_at(file: Path, key: str) -> CurriculumConfig:
        if not file.is_file():
            raise UserError(f"{path}: {key}: curriculum file {str(file)!r} does not exist")
        return load_curriculum(file)

    main = curriculum_at(config.curriculum, "curriculum")
    arm_curricula: dict[str, CurriculumConfig] = {}
    trains_target = False
    for index, arm in enumerate(config.arms):
        curriculum = main
        if arm.curriculum is not None:
            curriculum = curriculum_at(arm.curriculum, f"arms.{index}.curriculum")
            if curriculum.tokenizer != main.tokenizer:
                raise UserError(
                    f"{path}: arms.{index}.curriculum: its tokenizer settings differ from the "
                    "experiment's curriculum; every arm must share one tokenizer"
                )
        if arm.match is not None:  # the matched arm's data and stages
            matched = config.arm(arm.match)
            if matched.curriculum is not None:
                curriculum = curriculum_at(matched.curriculum, f"arms.{index}.match")
        arm_curricula[arm.name] = curriculum
        stages = arm.stages if arm.stages is not None else curriculum.stage_names
        for stage in stages:
            if stage not in curriculum.stage_names:
                raise UserError(
                    f"{path}: arms.{index}.stages: no stage {stage!r} in curriculum "
                    f"{curriculum.name!r}; stages are: {', '.join(curriculum.stage_names)}"
                )
        problem = arm.options.check_stages(list(stages), curriculum.target, config.train.tokens)
        if problem:
            raise UserError(f"{path}: arms.{index}: {problem}")
        if arm.options.target_only or main.target in stages:
            trains_target = True
    if not trains_target:
        raise UserError(f"{path}: arms: no arm trains on the target stage {main.target!r}")
    adapt_curricula = None
    if config.adapt is not None:
        check_new_style(config.adapt, [main, *arm_curricula.values()], str(path))
        adapt_curricula = {style.name: style_curriculum(main, config.adapt, style.name) for style in config.adapt.styles}
    return Experiment(
        config=config, source=path, curriculum=main, arm_curricula=arm_curricula, adapt_curricula=adapt_curricula
    )


def _same_source(style: Music21Stage | MidiDirStage, stage: StageConfig) -> bool:
    """True when a pretraining ``stage`` draws from the style's source (the same music21
    collection, or MIDI folders of which one holds the other)."""
    if isinstance(style, Music21Stage):
        return isinstance(stage, Music21Stage) and stage.collection == style.collection
    if not isinstance(stage, MidiDirStage):
        return False
    mine, theirs = Path(style.path).resolve(), Path(stage.path).resolve()
    return mine == theirs or mine in theirs.parents or theirs in mine.parents


def check_new_style(adapt: AdaptSection, curricula: list[CurriculumConfig], source: str) -> None:
    """Refuse (one line) an adaptation style that some pretraining stage draws from, or that is
    named like one: the adaptation phase measures learning music the model has not seen."""
    for index, style in enumerate(adapt.styles):
        key = "adapt.style" if len(adapt.styles) == 1 else f"adapt.styles.{index}"
        what = f"collection {style.collection!r}" if isinstance(style, Music21Stage) else f"folder {str(style.path)!r}"
        if isinstance(style, MidiDirStage) and not Path(style.path).is_dir():
            raise UserError(f"{source}: {key}.path: {what} does not exist (expected a folder of .mid/.midi files)")
        for curriculum in curricula:
            for stage in curriculum.stages:
                if _same_source(style, stage):
                    raise UserError(
                        f"{source}: {key}: {what} is also pretraining stage {stage.name!r} of curriculum "
                        f"{curriculum.name!r}; the new style must be music that no pretraining stage contains"
                    )
                if stage.name == style.name:
                    raise UserError(
                        f"{source}: {key}.name: {style.name!r} is also the name of a pretraining stage of curriculum "
                        f"{curriculum.name!r}; name the style otherwise"
                    )


def style_curriculum(curriculum: CurriculumConfig, adapt: AdaptSection, name: str | None = None) -> CurriculumConfig:
    """An adaptation style (``name``; default the first) as a one-stage curriculum with the
    experiment curriculum's tokenizer, split, filters, keys and seed: prepared (and split by tune)
    like every other stage."""
    style = adapt.style if name is None else adapt.style_named(name)
    return CurriculumConfig(
        name=f"{curriculum.name}-adapt-{style.name}"[:100],
        description=f"the [adapt] style of curriculum {curriculum.name!r}",
        seed=curriculum.seed,
        keys=list(curriculum.keys),
        tokenizer=curriculum.tokenizer,
        split=curriculum.split,
        filters=curriculum.filters,
        stages=[style],
    )
