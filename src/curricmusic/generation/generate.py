"""Sampling from a trained run: KV-cached, grammar-constrained, copy-blocked, seeded; MIDI and WAV out.

``curricmusic generate RUN_DIR`` loads ``RUN_DIR/model`` and the tokenizer beside it (no training
code), samples in batches, and writes ``sample_NNN.mid`` (and ``.wav``) with ``manifest.json``.
Beyond the model's context the cache is re-encoded over the newest half window (an exact sliding
window: the rotary positions keep counting).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from curricmusic.common.errors import UserError
from curricmusic.common.progress import err_console, progress_bar
from curricmusic.config.generation import GenerationSettings, key_bias
from curricmusic.data.prepared import PreparedData
from curricmusic.generation.copy_blocking import CopyGuard, index_n_for
from curricmusic.generation.filters import filter_logits, row_uniforms, sample_rows, sample_seed
from curricmusic.model.transformer import MusicTransformer, load_model, weights_digest
from curricmusic.music.grammar import RemiGrammar, supports_grammar
from curricmusic.music.notes import bar_length, piano_reduction
from curricmusic.music.tokenizers import decode_ids, encode_score, load_tokenizer
from curricmusic.novelty.copy_index import training_index
from curricmusic.training.run_files import MODEL_DIR, TOKENIZER_FILE, read_run

__all__ = ["LoadedRun", "load_run", "prompt_ids", "sample_tokens", "SampleBatch", "generate_samples"]


@dataclass
class LoadedRun:
    run_dir: Path
    model: MusicTransformer
    tokenizer: object
    info: dict
    checkpoint_sha256: str

    def prepared(self) -> PreparedData:
        return PreparedData.open(self.info["prepared"])


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """The model and tokenizer of a run folder, with a clear error when either is missing.

    ``device`` defaults to the GPU when there is one.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    info = read_run(run_dir)
    weights = run_dir / MODEL_DIR / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"{run_dir}: no trained model yet ({weights} is missing); train or resume the run first")
    model = load_model(run_dir / MODEL_DIR, device=device).eval()
    tokenizer, _ = load_tokenizer(run_dir / TOKENIZER_FILE)
    if len(tokenizer) != model.config.vocab_size:
        raise UserError(
            f"{run_dir}: the tokenizer has {len(tokenizer)} tokens but the model expects "
            f"{model.config.vocab_size}; the run folder is inconsistent"
        )
    # the weights' content hash: the same in every process for the same weights (a file hash is not)
    return LoadedRun(run_dir, model, tokenizer, info, weights_digest(model))


def prompt_ids(tokenizer, midi_path: str | Path, bars: int) -> np.ndarray:
    """Tokens ``(P,)`` of the last ``bars`` bars of a MIDI file: BOS + notes, no EOS."""
    from symusic import Score

    path = Path(midi_path)
    if not path.is_file():
        raise UserError(f"{path}: prompt file not found")
    data = path.read_bytes()
    if not data.startswith(b"MThd"):
        raise UserError(f"{path}: the prompt is not a MIDI file (no MThd header)")
    try:
        score = piano_reduction(Score.from_midi(data))
    except Exception as exc:  # noqa: BLE001 - symusic raises several types
        raise UserError(f"{path}: the prompt MIDI cannot be read ({exc})") from None
    if score.note_num() == 0:
        raise UserError(f"{path}: the prompt has no notes")
    bar_ticks = int(round(bar_length(score) * score.tpq))
    n_bars = -(-int(score.end()) // bar_ticks)
    start = max(0, n_bars - bars) * bar_ticks
    if start:
        score = score.clip(start, score.end(), clip_end=False).shift_time(-start)
    return encode_score(tokenizer, score)[:-1]


@dataclass
class SampleBatch:
    tokens: list[np.ndarray]  # generated ids per row (prompt excluded, EOS included when reached)
    mean_logprob: np.ndarray  # (B,) mean log-probability of the sampled tokens under the model
    copy_blocked: np.ndarray  # (B,) candidate tokens removed by copy-blocking
    reached_eos: np.ndarray  # (B,) bool


def _positions_per_beat(tokenizer) -> int:
    return int(getattr(tokenizer.config, "max_num_pos_per_beat", 0) or max(tokenizer.config.beat_res.values()))


@torch.inference_mode()  # cheaper than no_grad: no version counters on the cache
def sample_tokens(
    model: MusicTransformer,
    tokenizer,
    settings: GenerationSettings,
    seeds: list[int],
    prompt: np.ndarray,
    guard_index=None,
) -> SampleBatch:
    """Sample one continuation of ``prompt`` per seed, in one batch."""
    device = next(model.parameters()).device
    batch = len(seeds)
    grammar = RemiGrammar(tokenizer, device) if settings.grammar else None
    guard = None
    if guard_index is not None and grammar is not None:
        guard = CopyGuard(
            guard_index, settings.max_copy_notes, grammar.table, _positions_per_beat(tokenizer), batch, settings.copy_penalty
        )
    bias = key_bias(tokenizer, settings).to(device)
    eos, pad = tokenizer.vocab["EOS_None"], tokenizer.vocab["PAD_None"]
    prompt_t = torch.as_tensor(prompt, dtype=torch.long, device=device).unsqueeze(0).repeat(batch, 1)  # (B, P)
    capacity = model.config.max_seq_len
    if prompt_t.shape[1] > capacity // 2:
        raise UserError(
            f"the prompt is {prompt_t.shape[1]} tokens, more than half the model's context ({capacity}); "
            "use fewer --prompt-bars"
        )
    cache = model.new_kv_cache(batch, capacity)
    logits = model.forward_step(prompt_t, cache)[:, -1].float()  # (B, V)
    history = torch.empty((batch, prompt_t.shape[1] + settings.max_tokens), dtype=torch.long, device=device)
    history[:, : prompt_t.shape[1]] = prompt_t  # (B, P + max_tokens): prompt, then what is sampled
    filled = prompt_t.shape[1]
    state = grammar.replay(prompt_t) if grammar is not None else None
    if guard is not None:
        for column in range(1, prompt_t.shape[1]):
            guard.observe(prompt_t[:, column].cpu().numpy())
    prompt_bars = int(state.bars[0]) if state is not None else int((prompt_t[0] == tokenizer.vocab["Bar_None"]).sum())
    max_bars = prompt_bars + settings.max_bars
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    logprob = torch.zeros(batch, dtype=torch.float64, device=device)
    counts = torch.zeros(batch, dtype=torch.float64, device=device)
    generated: list[torch.Tensor] = []
    uniforms = row_uniforms(np.asarray(seeds, dtype=np.uint64), np.arange(settings.max_tokens))  # (B, steps)
    bars = torch.full((batch,), prompt_bars, dtype=torch.long, device=device)
    for step in range(settings.max_tokens):
        scores = logits + bias
        if step < settings.min_tokens:
            scores[:, eos] = float("-inf")
        if grammar is not None:
            scores = scores.masked_fill(~grammar.allowed(state, max_bars, settings.max_tokens - step), float("-inf"))
        if guard is not None:
            rows = torch.nonzero(grammar.pitch_may_follow[state.last_kind] & ~done).flatten().cpu().numpy()
            if rows.size:
                scores = guard.adjust(scores, rows)
        scores = filter_logits(scores, settings.temperature, settings.top_k, settings.top_p, settings.min_p)
        dead = ~torch.isfinite(scores).any(dim=-1)
        if dead.any():  # nothing left (no grammar, or a filter emptied a row): end the row cleanly
            scores[dead] = float("-inf")
            scores[dead, eos] = 0.0
        tokens = sample_rows(scores, uniforms[:, step])  # (B,)
        if grammar is None:
            bars = bars + (tokens == tokenizer.vocab["Bar_None"]).long()
            tokens = torch.where(bars > max_bars, torch.full_like(tokens, eos), tokens)
            if step == settings.max_tokens - 1:
                tokens = torch.full_like(tokens, eos)
        tokens = torch.where(done, torch.full_like(tokens, pad), tokens)
        live = (~done).double()
        # log-probability of the token under the model's own distribution (before any mask)
        chosen = logits.gather(1, tokens.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, dim=-1)
        logprob += chosen.double() * live
        counts += live
        generated.append(tokens)
        if grammar is not None:
            state = grammar.advance(state, tokens)
        if guard is not None:
            guard.observe(tokens.cpu().numpy())
        done = done | (tokens == eos)
        if bool(done.all()):
            break
        history[:, filled] = tokens
        filled += 1
        if cache.remaining == 0:
            keep = capacity // 2
            logits = model.refill(cache, history[:, filled - keep : filled])[:, -1].float()
        else:
            logits = model.forward_step(tokens.unsqueeze(1), cache)[:, -1].float()
    stacked = torch.stack(generated, dim=1).cpu().numpy() if generated else np.zeros((batch, 0), np.int64)
    rows = []
    for row in stacked:
        end = np.flatnonzero(row == eos)
        rows.append(row[: end[0] + 1] if end.size else row)
    return SampleBatch(
        tokens=rows,
        mean_logprob=(logprob / counts.clamp(min=1)).cpu().numpy(),
        copy_blocked=guard.blocked_count.copy() if guard is not None else np.zeros(batch, dtype=np.int64),
        reached_eos=done.cpu().numpy(),
    )


def generate_samples(
    run_dir: str | Path,
    out_dir: str | Path,
    settings: GenerationSettings,
    *,
    show_progress: bool = True,
) -> dict:
    """Write ``settings.n`` samples of the run into ``out_dir`` with ``manifest.json``."""
    from curricmusic.generation.output import check_output_dir, write_outputs

    check_output_dir(Path(out_dir), settings.n, settings.wav)  # refuse before any work
    run = load_run(run_dir)
    tokenizer = run.tokenizer
    grammar_ok, why = supports_grammar(tokenizer)
    if settings.grammar and not grammar_ok:
        err_console.print(f"[yellow]grammar constraint off: {why}[/]")
        settings = settings.model_copy(update={"grammar": False})
    prompt = prompt_ids(tokenizer, settings.prompt, settings.prompt_bars) if settings.prompt else np.array(
        [tokenizer.vocab["BOS_None"]], dtype=np.int64
    )
    index = None
    if settings.copy_blocking:
        if not settings.grammar:
            err_console.print("[yellow]copy-blocking needs the grammar constraint; it is off[/]")
            settings = settings.model_copy(update={"copy_blocking": False})
        else:
            index = training_index(run.prepared(), (index_n_for(settings.max_copy_notes),), show_progress)
    total = settings.n * settings.rerank
    seeds = [sample_seed(settings.seed, i) for i in range(total)]
    batches: list[SampleBatch] = []
    with progress_bar("Sampling", total, show_progress) as update:
        for lo in range(0, total, settings.batch_size):
            chunk = seeds[lo : lo + settings.batch_size]
            batches.append(sample_tokens(run.model, tokenizer, settings, chunk, prompt, index))
            update(len(chunk))
    tokens = [row for b in batches for row in b.tokens]
    logprob = np.concatenate([b.mean_logprob for b in batches])
    blocked = np.concatenate([b.copy_blocked for b in batches])
    eos = np.concatenate([b.reached_eos for b in batches])
    scores = [decode_ids(tokenizer, np.concatenate([prompt[1:], row])) for row in tokens]
    return write_outputs(run, Path(out_dir), settings, seeds, prompt, tokens, scores, logprob, blocked, eos, show_progress)
