"""The compiled training step: ``torch.compile`` (inductor) of the model's forward and backward.

On CPU inductor fuses the elementwise work around the matrix products (norms, GELU, rotary
embeddings, the softmax of the loss and their backward passes) into generated C++/OpenMP
kernels; on a GPU into Triton kernels. The model is compiled in place at fixed window shapes
(``dynamic=False``: one graph per window length, so a sequence-length warm-up compiles once per
length), and only in training mode: evaluation, with its variable widths, stays eager.

Whether a run compiles is decided once, before its first step (:func:`decide`): ``[train]
compile`` says ``true``, ``false`` or ``"auto"`` (compiled when the run has at least
:data:`AUTO_MIN_STEPS` optimizer steps, long enough to earn back what compiling costs), and the
``--compile/--no-compile`` flag (the :data:`COMPILE_ENV` variable, so that launched processes
inherit it) overrides the file. A machine that cannot compile (no working C++ compiler, an
unsupported Python) trains eagerly and says so in one line.

Compiled code is cached on disk under the cache root (``TORCHINDUCTOR_CACHE_DIR``, see
:mod:`curricmusic.common.paths`), so the runs of a study compile each shape once: a later process
pays only for tracing the model again and loading the cached kernels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from curricmusic.common.paths import redirect_tool_caches
from curricmusic.model.compile_check import compile_problem

__all__ = [
    "COMPILE_ENV",
    "AUTO_MIN_STEPS",
    "CompileDecision",
    "decide",
    "compile_problem",
    "compile_for_training",
    "deterministic_kernels",
]

#: Set by ``--compile`` ("1") and ``--no-compile`` ("0"); overrides ``[train] compile``.
COMPILE_ENV = "CURRICMUSIC_COMPILE"
#: ``compile = "auto"`` compiles runs of at least this many optimizer steps. Compiling the study
#: model costs a few seconds with a warm cache (tens of seconds cold) and saves a few to some tens
#: of milliseconds a step on 2 CPU cores (benchmarks/RESULTS.md, 2026-12-07): shorter runs lose.
AUTO_MIN_STEPS = 1000


@dataclass(frozen=True)
class CompileDecision:
    """What a run does: ``setting`` as asked (``"auto"``, ``"true"``, ``"false"``), ``compiled``
    as done, and ``why`` in a few words; recorded in ``run.json``."""

    setting: str
    compiled: bool
    why: str

    def to_dict(self) -> dict:
        return {"setting": self.setting, "compiled": self.compiled, "why": self.why}


def requested(config_setting: str | bool) -> str:
    """The setting in force: the flag's (:data:`COMPILE_ENV`) when given, else the file's."""
    flag = os.environ.get(COMPILE_ENV, "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return "true"
    if flag in ("0", "false", "no", "off"):
        return "false"
    return str(config_setting).lower()


def decide(config_setting: str | bool, total_steps: int) -> CompileDecision:
    """Whether a run of ``total_steps`` optimizer steps compiles its training step."""
    setting = requested(config_setting)
    if setting == "false":
        return CompileDecision(setting, False, "compile = false")
    if setting == "auto" and total_steps < AUTO_MIN_STEPS:
        return CompileDecision(setting, False, f"auto: {total_steps} steps, fewer than {AUTO_MIN_STEPS}")
    problem = compile_problem()
    if problem is not None:
        return CompileDecision(setting, False, f"cannot compile here: {problem}")
    return CompileDecision(setting, True, "compile = true" if setting == "true" else f"auto: {total_steps} steps")


def compile_for_training(model: torch.nn.Module) -> None:
    """Compile ``model``'s calls in place at fixed shapes (its state dict keeps its keys).

    Evaluation calls ``model.forward`` directly (see :func:`~.evaluate.evaluate`), which stays eager.
    """
    redirect_tool_caches()
    model.compile(dynamic=False)


@contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """PyTorch's deterministic mode while a compiled training step runs on CPU (when ``enabled``).

    Inductor writes a scatter-add (the gradient of the token embedding) as a parallel loop of
    atomic adds, whose order, and so whose float rounding, changes from run to run: two runs of
    the same seed would drift apart in the last bits. In deterministic mode it calls ATen's
    ordered kernel instead. The mode is part of what a compiled graph is specialised on, so it is
    on for every compiled step (``warn_only``: an eager operation without a deterministic
    version warns instead of failing); the previous mode comes back afterwards.
    """
    if not enabled:
        yield
        return
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)
