"""Sampling from a trained run: KV-cached, grammar-constrained, copy-blocked, seeded; MIDI and WAV out.

``curricmusic generate RUN_DIR`` loads ``RUN_DIR/model`` and the tokenizer beside it (no training
code), or a shared model folder (``curricmusic export``'s; see :mod:`.run`), samples in batches, and writes ``sample_NNN.mid`` (and ``.wav``) with ``manifest.json``.
Beyond the model's context the cache is re-encoded over the newest half window (an exact sliding
window: the rotary positions keep counting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape

from curricmusic.common.errors import UserError
from curricmusic.common.folders import writing_folder
from curricmusic.common.progress import err_console, progress_bar
from curricmusic.config.generation import GenerationSettings
from curricmusic.generation.compiled import CompiledDecoder, use_compiled
from curricmusic.generation.copy_blocking import CopyGuard, index_n_for
from curricmusic.generation.filters import filter_logits, row_uniforms, sample_rows, sample_seed
from curricmusic.generation.key_prior import key_bias
from curricmusic.generation.output import Samples, check_output_dir, write_outputs
from curricmusic.generation.prompt import Prompt, load_prompt, prompt_ids
from curricmusic.generation.run import LoadedRun, load_run
from curricmusic.model.budget import check_generation_fits
from curricmusic.model.kv_cache import KVCache
from curricmusic.model.transformer import MusicTransformer
from curricmusic.music.grammar import Grammar, GrammarState, Tracker, count_bars, supports_grammar
from curricmusic.music.grammar_table import GrammarTable
from curricmusic.music.tokenizers import Tokenizer, decode_ids, special_ids
from curricmusic.novelty.copy_index import NGramIndex, training_index

__all__ = ["LoadedRun", "load_run", "prompt_ids", "sample_tokens", "SampleBatch", "generate_samples", "MAX_REDRAWS"]

_UNIFORM_BLOCK = 256  # steps of uniforms drawn at once
#: Rounds of redrawing the samples that have fewer than ``min_notes`` new notes.
MAX_REDRAWS = 4


@dataclass
class SampleBatch:
    tokens: list[np.ndarray]  # generated ids per row (prompt excluded, EOS included when reached)
    mean_logprob: np.ndarray  # (B,) mean log-probability of the sampled tokens under the model
    copy_blocked: np.ndarray  # (B,) candidate tokens removed by copy-blocking
    reached_eos: np.ndarray  # (B,) bool


@dataclass
class _Sampling:
    """Everything one batch's sampling loop carries from step to step."""

    model: MusicTransformer
    settings: GenerationSettings
    tracker: Tracker  # follows every row's time and bars (the grammar itself when it is on)
    grammar: Grammar | None
    state: GrammarState
    guard: CopyGuard | None
    bias: torch.Tensor  # (V,) key prior and pitch range
    cache: KVCache
    history: torch.Tensor  # (B, P + max_tokens): the prompt, then what is sampled
    filled: int
    logits: torch.Tensor  # (B, V) of the next token
    seeds: np.ndarray  # (B,) uint64: each row's stream of uniforms (row_uniforms)
    max_bars: int  # the prompt's bars + settings.max_bars
    eos: int
    pad: int
    done: np.ndarray  # (B,) bool
    logprob: torch.Tensor  # (B,) float64
    counts: torch.Tensor  # (B,) float64
    generated: list[np.ndarray] = field(default_factory=list)
    uniforms: np.ndarray | None = None  # (B, _UNIFORM_BLOCK) of steps from uniforms_from on
    uniforms_from: int = 0

    def uniforms_at(self, step: int) -> np.ndarray:
        """Each row's uniform of ``step`` ``(B,)``, drawn a block of steps at a time: memory stays
        bounded whatever ``max_tokens``."""
        if self.uniforms is None or not 0 <= step - self.uniforms_from < self.uniforms.shape[1]:
            self.uniforms_from = step
            self.uniforms = row_uniforms(self.seeds, np.arange(step, step + _UNIFORM_BLOCK))
        return self.uniforms[:, step - self.uniforms_from]
    decoder: CompiledDecoder | None = None  # the compiled step (None: eager)
    table: GrammarTable | None = None  # the grammar mask as a table (compiled, where the kind allows)

    @property
    def device(self) -> torch.device:
        return self.logits.device


def _start(
    model: MusicTransformer,
    tokenizer: Tokenizer,
    settings: GenerationSettings,
    seeds: list[int],
    prompt: np.ndarray,
    guard_index: NGramIndex | None,
    compiled: bool = False,
) -> _Sampling:
    """Set-up: grammar, copy guard, key prior, and the prompt run through the model and tracker."""
    device = next(model.parameters()).device
    batch = len(seeds)
    capacity = model.config.max_seq_len
    if len(prompt) > capacity // 2:
        raise UserError(
            f"the prompt is {len(prompt)} tokens, more than half the model's context ({capacity} tokens, the run's "
            "train.seq_len); use fewer --prompt-bars"
        )
    grammar = Grammar(tokenizer) if settings.grammar else None
    tracker = grammar or Tracker(tokenizer)
    guard = None
    if guard_index is not None and grammar is not None:
        guard = CopyGuard(guard_index, settings.max_copy_notes, tracker.table, batch, settings.copy_penalty)
    state = tracker.start(batch)
    for token in np.asarray(prompt[1:], dtype=np.int64):  # the prompt's time, meter, tempo and notes
        column = np.full(batch, token, dtype=np.int64)
        tracker.advance(state, column)
        if guard is not None:
            guard.observe(np.full(batch, tracker.table.pitch[token]), tracker.quarters(state))
    prompt_t = torch.as_tensor(prompt, dtype=torch.long, device=device).unsqueeze(0).repeat(batch, 1)  # (B, P)
    cache = model.new_kv_cache(batch, capacity)
    if compiled:  # the compiled step feeds the prompt's last token itself
        if prompt_t.shape[1] > 1:
            model.forward_step(prompt_t[:, :-1], cache)
        logits = torch.zeros((batch, model.config.vocab_size), device=device)
    else:
        logits = model.forward_step(prompt_t, cache)[:, -1].float()  # (B, V)
    history = torch.empty((batch, prompt_t.shape[1] + settings.max_tokens), dtype=torch.long, device=device)
    history[:, : prompt_t.shape[1]] = prompt_t
    special = special_ids(tokenizer)
    eos, pad = special["EOS"], special["PAD"]
    zeros = torch.zeros(batch, dtype=torch.float64, device=device)
    bias = key_bias(tokenizer, settings).to(device)
    table = GrammarTable(grammar) if compiled and grammar is not None and GrammarTable.supports(grammar) else None
    decoder = None
    if compiled:
        rows = table.table if table is not None else _eos_table(bias.shape[0], eos)
        decoder = CompiledDecoder(model, batch, settings, rows, bias, eos)
    return _Sampling(
        model=model, settings=settings, tracker=tracker, grammar=grammar, state=state, guard=guard,
        bias=bias, cache=cache, history=history, filled=prompt_t.shape[1],
        logits=logits, seeds=np.asarray(seeds, dtype=np.uint64),
        max_bars=count_bars(tokenizer, prompt) + settings.max_bars, eos=eos, pad=pad,
        done=np.zeros(batch, dtype=bool), logprob=zeros, counts=zeros.clone(), decoder=decoder, table=table,
    )  # fmt: skip


def _eos_table(vocab: int, eos: int) -> np.ndarray:
    """The mask table without a grammar table: row 0 allows every token, row 1 all but EOS."""
    table = np.ones((2, vocab), dtype=bool)
    table[1, eos] = False
    return table


def _scores(run: _Sampling, step: int) -> torch.Tensor:
    """The filtered scores ``(B, V)`` of the next token: prior, grammar, copy-blocking, filters."""
    settings = run.settings
    scores = run.logits + run.bias
    if step < settings.min_tokens:
        scores[:, run.eos] = float("-inf")
    if run.grammar is not None:
        allowed = run.grammar.allowed(run.state, run.max_bars, settings.max_tokens - step)  # (B, V)
        scores = scores.masked_fill(~torch.from_numpy(allowed).to(run.device), float("-inf"))
        if run.guard is not None:
            rows = np.flatnonzero(run.grammar.pitch_may_follow(run.state) & ~run.done)
            if rows.size:
                scores = run.guard.adjust(scores, rows)
    scores = filter_logits(scores, settings.temperature, settings.top_k, settings.top_p, settings.min_p)
    dead = ~torch.isfinite(scores).any(dim=-1)
    if dead.any():  # nothing left (no grammar, or a filter emptied a row): end the row cleanly
        scores[dead] = float("-inf")
        scores[dead, run.eos] = 0.0
    return scores


def _step(run: _Sampling, step: int) -> bool:
    """Sample one token per row and feed it to the model; True when every row has ended."""
    tokens = sample_rows(_scores(run, step), run.uniforms_at(step)).cpu().numpy()  # (B,)
    tokens_t = _record(run, step, tokens, run.logits)
    if tokens_t is None:
        return True
    if run.cache.remaining == 0:
        keep = run.model.config.max_seq_len // 2
        run.logits = run.model.refill(run.cache, run.history[:, run.filled - keep : run.filled])[:, -1].float()
    else:
        run.logits = run.model.forward_step(tokens_t.unsqueeze(1), run.cache)[:, -1].float()
    return False


def _step_compiled(run: _Sampling, step: int) -> bool:
    """:func:`_step` through the compiled decoder: it feeds the newest token (the prompt's last,
    then each sampled one) and draws the next; True when every row has ended."""
    decoder, settings = run.decoder, run.settings
    assert decoder is not None
    tokens_left, eos_banned = settings.max_tokens - step, step < settings.min_tokens
    if run.table is not None:
        rows = run.table.index(run.state, run.max_bars, tokens_left, eos_banned)  # (B, F)
        allowed = None
    else:
        rows = np.full((run.done.shape[0], 1), int(eos_banned), dtype=np.int64)
        allowed = run.grammar.allowed(run.state, run.max_bars, tokens_left) if run.grammar is not None else None
        if allowed is not None:  # a kind without a table (open notes): its mask through ``extra``
            decoder.extra[~allowed] = float("-inf")
    touched = _block_copies(run, decoder, rows, allowed)
    if run.cache.remaining == 0:  # re-encode the newest half window; the compiled step adds the newest token
        keep = run.model.config.max_seq_len // 2
        run.model.refill(run.cache, run.history[:, run.filled - keep : run.filled - 1], n_new=0)
    drawn, logprob, run.logits = decoder(run.history[:, run.filled - 1], run.cache, rows, np.ascontiguousarray(run.uniforms_at(step)))
    if allowed is not None:
        decoder.extra[:] = 0.0
    elif touched is not None:
        decoder.extra[touched] = 0.0
    return _record(run, step, drawn.cpu().numpy(), run.logits, logprob) is None


def _block_copies(
    run: _Sampling, decoder: CompiledDecoder, rows: np.ndarray, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Copy-blocking for the compiled step: the guard's blocked (row, token) pairs go into the
    decoder's additive input; returns them (to clear after the step), or None."""
    if run.guard is None or run.grammar is None:
        return None
    candidates = np.flatnonzero(run.grammar.pitch_may_follow(run.state) & ~run.done)
    row_ids, token_ids = run.guard.blocked(candidates) if candidates.size else (candidates, candidates)
    if row_ids.size == 0:
        return None
    # count what blocking removed: tokens the grammar, the key prior and EOS rules still allowed
    if allowed is not None:
        mask = allowed[row_ids, token_ids]
    else:
        assert run.table is not None  # a grammar without ``allowed`` has its table
        mask = run.table.table[rows[row_ids], token_ids[:, None]].all(axis=1)
    mask &= np.isfinite(run.bias.cpu().numpy()[token_ids])
    run.guard.blocked_count += np.bincount(row_ids[mask], minlength=run.done.shape[0])
    penalty = run.guard.penalty
    decoder.extra[row_ids, token_ids] += float("-inf") if penalty is None else -penalty
    return row_ids, token_ids


def _record(
    run: _Sampling, step: int, tokens: np.ndarray, logits: torch.Tensor, drawn_logprob: torch.Tensor | None = None
) -> torch.Tensor | None:
    """After every row chose ``tokens`` (B,) under ``logits`` (B, V): follow them (grammar state,
    bars, copy guard, log-probabilities, history). ``drawn_logprob``: the tokens' log-probabilities
    when already known. Returns the tokens to feed (B,), None when every row has ended."""
    tokens[run.done] = run.pad
    run.tracker.advance(run.state, tokens)
    overridden = False
    if run.grammar is None:  # no mask: stop a row that opens one bar too many, or runs out of tokens
        over = (run.tracker.bars_opened(run.state) > run.max_bars) | (step == run.settings.max_tokens - 1)
        overridden = bool((over & ~run.done & (tokens != run.eos)).any())
        tokens[over & ~run.done] = run.eos
    tokens_t = torch.from_numpy(tokens).to(run.device)
    live = torch.from_numpy(~run.done).to(run.device).double()
    if drawn_logprob is not None and not overridden:
        chosen = drawn_logprob
    else:  # log-probability of the token under the model's own distribution (before any mask)
        chosen = logits.gather(1, tokens_t.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=-1)
    run.logprob += chosen.double() * live
    run.counts += live
    run.generated.append(tokens)
    if run.guard is not None:
        run.guard.observe(run.tracker.table.pitch[tokens], run.tracker.quarters(run.state))
    run.done |= tokens == run.eos
    if bool(run.done.all()):
        return None
    run.history[:, run.filled] = tokens_t
    run.filled += 1
    return tokens_t


def _finish(run: _Sampling) -> SampleBatch:
    """Each row's tokens up to its EOS, with its mean log-probability and copy-blocking count."""
    batch = run.done.shape[0]
    stacked = np.stack(run.generated, axis=1) if run.generated else np.zeros((batch, 0), np.int64)
    rows = []
    for row in stacked:
        end = np.flatnonzero(row == run.eos)
        rows.append(row[: end[0] + 1] if end.size else row)
    return SampleBatch(
        tokens=rows,
        mean_logprob=(run.logprob / run.counts.clamp(min=1)).cpu().numpy(),
        copy_blocked=run.guard.blocked_count.copy() if run.guard is not None else np.zeros(batch, dtype=np.int64),
        reached_eos=run.done.copy(),
    )


@torch.inference_mode()  # cheaper than no_grad: no version counters on the cache
def sample_tokens(
    model: MusicTransformer,
    tokenizer: Tokenizer,
    settings: GenerationSettings,
    seeds: list[int],
    prompt: np.ndarray,
    guard_index: NGramIndex | None = None,
    compiled: bool = False,
) -> SampleBatch:
    """Sample one continuation of ``prompt`` ``(P,)`` (BOS first) per seed, in one batch;
    ``compiled``: through the compiled decoding step (see :mod:`.compiled`)."""
    run = _start(model, tokenizer, settings, seeds, prompt, guard_index, compiled)
    step_once = _step_compiled if compiled else _step
    for step in range(settings.max_tokens):
        if step_once(run, step):
            break
    return _finish(run)


def _first_rows(batch: SampleBatch, n: int) -> SampleBatch:
    if len(batch.tokens) == n:
        return batch
    return SampleBatch(batch.tokens[:n], batch.mean_logprob[:n], batch.copy_blocked[:n], batch.reached_eos[:n])


@dataclass
class _Drawn:
    """Every candidate drawn so far, one entry per candidate (seed order)."""

    seeds: list[int]
    tokens: list[np.ndarray]
    mean_logprob: list[float]
    copy_blocked: list[int]
    reached_eos: list[bool]
    redraws: list[int]


def _draw(
    run: LoadedRun,
    settings: GenerationSettings,
    seeds: list[int],
    prompt: np.ndarray,
    index: NGramIndex | None,
    progress: Callable[[int], None],
    compiled_width: int | None = None,
) -> _Drawn:
    """Sample one candidate per seed, in batches of ``settings.batch_size``. ``compiled_width``
    (None: eager): through the compiled step, every batch filled up to that many rows (one
    compiled batch size) with copies of its first seed; a row depends only on its own seed, so
    the copies are simply dropped."""
    drawn = _Drawn([], [], [], [], [], [])
    compiled = compiled_width is not None
    for lo in range(0, len(seeds), settings.batch_size):
        chunk = seeds[lo : lo + settings.batch_size]
        spare = [chunk[0]] * max(0, (compiled_width or 0) - len(chunk))
        rows = sample_tokens(run.model, run.tokenizer, settings, chunk + spare, prompt, index, compiled)
        batch = _first_rows(rows, len(chunk))
        drawn.seeds += chunk
        drawn.tokens += batch.tokens
        drawn.mean_logprob += [float(v) for v in batch.mean_logprob]
        drawn.copy_blocked += [int(v) for v in batch.copy_blocked]
        drawn.reached_eos += [bool(v) for v in batch.reached_eos]
        drawn.redraws += [0] * len(chunk)
        progress(len(chunk))
    return drawn


def _redraw_short(
    run: LoadedRun,
    settings: GenerationSettings,
    drawn: _Drawn,
    prompt: np.ndarray,
    index: NGramIndex | None,
    new_notes: Callable[[np.ndarray], int],
    compiled_width: int | None = None,
) -> None:
    """Draw again, with fresh seeds, every candidate with fewer than ``settings.min_notes`` new
    notes, for up to :data:`MAX_REDRAWS` rounds. The seed of candidate i in round r is
    ``sample_seed(seed, i + r * total)``: a pure function of the settings, as every seed is."""
    total = len(drawn.seeds)
    for round_ in range(1, MAX_REDRAWS + 1):
        short = [i for i, row in enumerate(drawn.tokens) if new_notes(row) < settings.min_notes]
        if not short:
            return
        seeds = [sample_seed(int(settings.seed or 0), i + round_ * total) for i in short]
        again = _draw(run, settings, seeds, prompt, index, lambda _n: None, compiled_width)
        for j, i in enumerate(short):
            drawn.seeds[i], drawn.tokens[i] = again.seeds[j], again.tokens[j]
            drawn.mean_logprob[i], drawn.copy_blocked[i] = again.mean_logprob[j], again.copy_blocked[j]
            drawn.reached_eos[i] = again.reached_eos[j]
            drawn.redraws[i] = round_


def _prompt(run: LoadedRun, settings: GenerationSettings) -> Prompt:
    tokenizer = run.tokenizer
    if settings.prompt is None:
        return Prompt(np.array([tokenizer.vocab["BOS_None"]], dtype=np.int64), 0)
    return load_prompt(tokenizer, settings.prompt, settings.prompt_bars, run.model.config.max_seq_len)


def generate_samples(
    run_dir: str | Path,
    out_dir: str | Path,
    settings: GenerationSettings,
    *,
    sources: dict[str, str] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Write ``settings.n`` samples of the run into ``out_dir`` with ``manifest.json``.

    ``settings.seed`` None means the run's own seed. ``sources`` says where each setting came
    from (see :func:`curricmusic.config.run_settings.settings_for_run`); it goes into the manifest.
    Candidates with fewer than ``settings.min_notes`` new notes are drawn again (see
    :func:`_redraw_short`); the manifest counts the samples left empty.
    """
    check_output_dir(Path(out_dir), settings.n, settings.wav)  # refuse before any work
    with writing_folder(Path(out_dir), "samples"):  # one writer: a second one is refused at once
        return _generate_into(run_dir, Path(out_dir), settings, sources, show_progress)


def _generate_into(
    run_dir: str | Path, out_dir: Path, settings: GenerationSettings, sources: dict[str, str] | None, show_progress: bool
) -> dict[str, Any]:
    run = load_run(run_dir)
    tokenizer = run.tokenizer
    if settings.seed is None:
        settings = settings.model_copy(update={"seed": int(run.info.get("seed") or 0)})
    notes = list(run.notes)
    grammar_ok, why = supports_grammar(tokenizer)
    if settings.grammar and not grammar_ok:
        notes.append(f"grammar constraint off: {why}")
        settings = settings.model_copy(update={"grammar": False})
    prompt = _prompt(run, settings)
    index = None
    if settings.copy_blocking:
        if not settings.grammar:
            notes.append("copy-blocking off: it needs the grammar constraint")
            settings = settings.model_copy(update={"copy_blocking": False})
        elif run.shared:
            notes.append("copy-blocking off: a shared model folder carries no training data to block copies of")
            settings = settings.model_copy(update={"copy_blocking": False})
        else:
            index = training_index(run.prepared(), (index_n_for(settings.max_copy_notes),), show_progress)
    for note in notes + prompt.warnings:
        err_console.print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
    batch = min(settings.batch_size, settings.n * settings.rerank)
    check_generation_fits(run.model.config, batch, len(prompt.ids), settings.max_tokens, "generate")
    total = settings.n * settings.rerank
    seeds = [sample_seed(int(settings.seed or 0), i) for i in range(total)]
    width = min(settings.batch_size, total)
    compiled, why = use_compiled(settings, -(-total // width))
    if compiled or settings.compile is True:
        notes.append(f"decoding step {'compiled' if compiled else 'eager'} ({why})")
        err_console.print(notes[-1], highlight=False)
    prompt_notes = decode_ids(tokenizer, prompt.ids).note_num() if len(prompt.ids) > 1 else 0

    def new_notes(row: np.ndarray) -> int:
        return int(decode_ids(tokenizer, np.concatenate([prompt.ids[1:], row])).note_num()) - prompt_notes

    with progress_bar("Sampling", total, show_progress) as update:
        drawn = _draw(run, settings, seeds, prompt.ids, index, update, width if compiled else None)
    if settings.min_notes:
        _redraw_short(run, settings, drawn, prompt.ids, index, new_notes, width if compiled else None)
    prompt_bars = count_bars(tokenizer, prompt.ids)
    tracker = Tracker(tokenizer)
    samples = Samples(
        seeds=drawn.seeds,
        prompt=prompt.ids,
        tokens=drawn.tokens,
        scores=[decode_ids(tokenizer, np.concatenate([prompt.ids[1:], row])) for row in drawn.tokens],
        mean_logprob=np.asarray(drawn.mean_logprob),
        copy_blocked=np.asarray(drawn.copy_blocked),
        reached_eos=np.asarray(drawn.reached_eos),
        n_bars=[count_bars(tokenizer, np.concatenate([prompt.ids, row])) - prompt_bars for row in drawn.tokens],
        seam_quarters=float(tracker.quarters(tracker.replay(prompt.ids))[0]) if len(prompt.ids) > 1 else None,
        notes=notes,
        prompt_notes=prompt_notes,
        prompt_bars=prompt.bars,
        warnings=prompt.warnings,
        redraws=drawn.redraws,
    )
    return write_outputs(run, Path(out_dir), settings, samples, sources=sources, show_progress=show_progress)
