"""Compiled sampling: one ``torch.compile``'d step feeds a token, masks, filters and samples.

At batch 1 a decoding step of a small model is mostly the fixed cost of each operator: two
dozen matrix products, norms, rotary embeddings, attention, then the sampling filters, each a
separate call. :class:`CompiledDecoder` runs all of it as one compiled graph per batch size
(and per attention width, see :func:`curricmusic.model.decode.keys_for`): the model's step
against the preallocated KV cache (:func:`~curricmusic.model.decode.decode_logits`, the slot and
position passed as data), the key prior, the grammar mask as a lookup in its precomputed table
(:class:`~curricmusic.music.grammar_table.GrammarTable`), copy-blocking (an additive ``(B, V)``
array that is zero except where the guard blocks a pitch), temperature, top-k, top-p and min-p,
and the inverse-CDF draw from each row's own uniform. Python keeps only what no table covers:
the grammar state (a few NumPy operations a step), the copy guard's n-gram lookups, and
bookkeeping.

The compiled step computes the same quantities as the eager loop in
:mod:`curricmusic.generation.generate`, with float sums fused in another order: logits agree to
about 1e-6, so a sample can differ from the eager one where a draw falls within that distance of
a boundary between two tokens. For a given seed, batch size and machine it is reproducible run
to run; greedy decoding (``top_k = 1``) gives the eager tokens (tests/generation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from curricmusic.config.generation import GenerationSettings
from curricmusic.generation.filters import filter_logits, sample_rows
from curricmusic.model.compile_check import compile_problem
from curricmusic.model.decode import decode_logits, keys_for
from curricmusic.model.kv_cache import KVCache
from curricmusic.model.transformer import MusicTransformer

#: The compiled decoding step: (model, tokens, caches, slot, position, keys, rows, table, bias,
#: extra, uniforms) -> (token, log-probability, logits).
StepFunction = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

__all__ = ["CompiledDecoder", "AUTO_MIN_STEPS", "use_compiled"]

#: ``compile = "auto"`` compiles when the batches could take at least this many decoding steps
#: in all (batches x max_tokens): below it, compiling (seconds from a warm cache, a minute or
#: more from a cold one on 2 cores) costs more than it saves (benchmarks/RESULTS.md, 2026-12-07).
AUTO_MIN_STEPS = 20_000
#: Graphs one process may compile for the step function: batch sizes x attention widths x settings.
_RECOMPILE_LIMIT = 64


def use_compiled(settings: GenerationSettings, batches: int) -> tuple[bool, str]:
    """Whether to sample ``batches`` batches compiled, and why (a few words)."""
    if settings.compile is False:
        return False, "compile = false"
    if settings.compile == "auto" and batches * settings.max_tokens < AUTO_MIN_STEPS:
        return False, f"auto: at most {batches * settings.max_tokens} steps, fewer than {AUTO_MIN_STEPS}"
    problem = compile_problem()
    if problem is not None:
        return False, f"cannot compile here: {problem}"
    return True, "compile = true" if settings.compile is True else "auto"


class CompiledDecoder:
    """The compiled decoding step for one model, batch size and set of sampling settings.

    ``table`` (R, V) bool: the rows whose AND is a row's mask (one all-True row at least);
    ``bias`` (V,): the key prior, added to every row. ``extra`` is a writable ``(B, V)`` float32
    array added to the scores of the next call (copy-blocking, masks no table covers); whoever
    writes into it clears it after the call.
    """

    def __init__(
        self, model: MusicTransformer, batch: int, settings: GenerationSettings, table: np.ndarray, bias: torch.Tensor, eos: int
    ) -> None:
        import torch._dynamo  # the recompile limit below

        device = model.tok_emb.weight.device
        self.model, self.batch, self.device = model, batch, device
        self.table = torch.as_tensor(table, dtype=torch.bool, device=device)  # (R, V)
        self.bias = bias.to(device=device, dtype=torch.float32)  # (V,)
        self.extra = np.zeros((batch, self.table.shape[1]), dtype=np.float32)  # (B, V)
        self._extra = torch.from_numpy(self.extra) if device.type == "cpu" else None
        self._slot = torch.zeros(1, dtype=torch.long, device=device)
        self._position = torch.zeros(1, dtype=torch.long, device=device)
        self._limits = torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT)
        step = _step_function(settings.temperature, settings.top_k, settings.top_p, settings.min_p, eos)
        self._step = torch.compile(step, dynamic=False, fullgraph=True)

    def __call__(
        self, tokens: torch.Tensor, cache: KVCache, rows: np.ndarray, uniforms: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feed ``tokens`` (B,) at the cache's next slot and draw the next token of every row.

        rows: (B, F) int64 table rows of each row's mask; uniforms: (B,) float64 in [0, 1).
        Returns the drawn tokens (B,) int64, their log-probabilities under the model (B,) and
        the logits (B, V); the cache has advanced by one token.
        """
        if cache.remaining < 1:
            raise ValueError("CompiledDecoder: the KV cache is full; re-encode a window first (model.refill)")
        slot, position = cache.length, cache.next_position
        self._slot.fill_(slot)
        self._position.fill_(position)
        extra = self._extra if self._extra is not None else torch.from_numpy(self.extra).to(self.device)
        inputs: dict[str, Any] = {
            "rows": torch.from_numpy(rows).to(self.device),
            "uniforms": torch.from_numpy(uniforms).to(self.device),
        }
        with self._limits:
            out = self._step(
                self.model, tokens.reshape(-1, 1).contiguous(), cache.keys, cache.values, self._slot, self._position,
                keys_for(slot, cache.capacity), inputs["rows"], self.table, self.bias, extra, inputs["uniforms"],
            )  # fmt: skip
        cache.commit(1, position + 1)
        return out


def _step_function(temperature: float, top_k: int, top_p: float, min_p: float, eos: int) -> StepFunction:
    """The function compiled for one set of sampling settings (constants of its graph)."""

    def step(
        model: MusicTransformer,
        tokens: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        slot: torch.Tensor,
        position: torch.Tensor,
        n_keys: int,
        rows: torch.Tensor,
        table: torch.Tensor,
        bias: torch.Tensor,
        extra: torch.Tensor,
        uniforms: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = decode_logits(model, tokens, keys, values, slot, position, n_keys)  # (B, V)
        allowed = table[rows].all(dim=1)  # (B, V): the AND of each row's table rows
        scores = (logits + bias + extra).masked_fill(~allowed, float("-inf"))
        scores = filter_logits(scores, temperature, top_k, top_p, min_p)
        dead = ~torch.isfinite(scores).any(dim=-1, keepdim=True)  # (B, 1): nothing left, end the row
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        only_eos = torch.where(vocab == eos, 0.0, float("-inf"))  # (V,)
        token = sample_rows(torch.where(dead, only_eos, scores), uniforms)  # (B,)
        logprob = logits.gather(1, token[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)  # (B,)
        return token, logprob, logits

    return step
