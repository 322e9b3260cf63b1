"""The model card of an exported run: ``README.md`` in the Hugging Face Hub's format.

YAML metadata first (license, library, pipeline, tags), then what the model is, its curriculum
with each source's license, the arm and budget, the losses per stage, the copy and novelty
figures of its samples, intended use and limitations, and how to load it. Every figure comes
from the facts :func:`curricmusic.experiment.export_facts.run_facts` read from the run; a
figure the run does not have is shown as ``-`` or said to be missing, never guessed.
"""

from __future__ import annotations

import json
from typing import Any

from curricmusic.reporting.style import fmt

__all__ = ["CARD_FILE", "TAGS", "model_card", "usage_snippet"]

CARD_FILE = "README.md"
TAGS = ("music", "midi", "symbolic-music", "music-generation", "miditok", "gpt_neox", "curriculum-learning", "curricmusic")


def _yaml(value: Any) -> str:
    """A YAML scalar: JSON's quoting is valid YAML, so strings are written as JSON strings."""
    return json.dumps(value)


def _metadata(facts: dict[str, Any]) -> list[str]:
    lines = ["---", f"license: {_yaml(facts.get('license') or 'other')}", "library_name: transformers"]
    lines += ["pipeline_tag: text-generation", "tags:"] + [f"- {_yaml(tag)}" for tag in TAGS]
    return lines + ["---", ""]


def usage_snippet(kind: str, where: str) -> str:
    """Ten lines of Python: load the model and its tokenizer, generate, decode to a MIDI file."""
    return f"""import torch
from miditok import {kind}
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("{where}")  # this folder, or its Hub id
tokenizer = {kind}.from_pretrained("{where}")
start = torch.tensor([[tokenizer.vocab["BOS_None"]]])
ids = model.generate(start, max_new_tokens=512)[0].tolist()  # sampling settings: generation_config.json
specials = {{tokenizer.vocab[t] for t in ("BOS_None", "EOS_None", "PAD_None")}}
tokenizer.decode([[i for i in ids if i not in specials]]).dump_midi("sample.mid")"""


def _n(value: Any) -> str:
    """A count with thousands grouped (``-`` when missing)."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else fmt(value)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(v if isinstance(v, str) else _n(v) for v in row) + " |" for row in rows]


def _model_section(facts: dict[str, Any]) -> list[str]:
    model, tokenizer = facts["model"], facts["tokenizer"]
    rows = [
        ("parameters", f"{model['parameters']:,} (the output head is the token embedding)"),
        ("layers x width x heads", f"{model['n_layers']} x {model['d_model']} x {model['n_heads']}"),
        ("MLP width", model["mlp_ratio"] * model["d_model"]),
        ("training context", f"{model['max_seq_len']} tokens (rotary positions: generation may run past it)"),
        ("rotary base", model["rope_base"]),
        ("biases", "yes" if model["bias"] else "none (exported as zeros where GPT-NeoX has them)"),
        ("tokenizer", f"MidiTok {tokenizer['kind']}, {tokenizer['vocab_size']} tokens, one merged piano stream per piece"),
        ("weights content hash", f"`{facts['weights_sha256']}`"),
    ]
    return ["## Model", "", *_table(("setting", "value"), rows), ""]


def _curriculum_section(facts: dict[str, Any]) -> list[str]:
    curriculum, training = facts["curriculum"], facts["training"]
    seen = training.get("stage_tokens") or {}
    rows = []
    for stage in curriculum["stages"]:
        pieces = stage["pieces"]
        counts = " / ".join(_n(pieces.get(split)) for split in ("train", "val", "test")) if pieces else "-"
        rows.append((stage["name"], stage["source"], counts, _n(seen.get(stage["name"])), stage["license"]))
    head = f"Curriculum `{curriculum.get('name') or '-'}`, stages in order; the target stage is `{curriculum.get('target')}`."
    table = _table(("stage", "source", "pieces (train / val / test)", "tokens trained on", "source license"), rows)
    return ["## Curriculum and training data", "", head, "", *table, ""]


def _training_section(facts: dict[str, Any]) -> list[str]:
    arm, training = facts["arm"], facts["training"]
    options = ", ".join(f"{k} = {json.dumps(v)}" for k, v in arm.items() if k not in ("name", "pacing"))
    rows = [
        ("experiment", f"`{training.get('experiment')}`"),
        ("arm", f"`{arm.get('name')}`: pacing {arm.get('pacing')}{'; ' + options if options else ''}"),
        ("seed", training.get("seed")),
        ("peak learning rate", f"{training.get('lr'):g} ({training.get('lr_schedule')})" if training.get("lr") else "-"),
        ("budget", f"{_n(training.get('budget_tokens'))} real tokens ({training.get('batch_size')} windows of {training.get('seq_len')} per step)"),
        ("trained", f"{_n(training.get('tokens_seen'))} tokens, step {training.get('steps_done')} of {training.get('total_steps')} ({training.get('status')})"),
    ]
    start = training.get("init_from")
    if start:
        rows.append(("started from", f"`{start['name']}` (weights `{str(start.get('weights_sha256'))[:12]}`), not from fresh weights"))
    adapt = training.get("adapt")
    if adapt:
        rows.append(("adaptation run", f"fine-tuned on {adapt.get('shots')} pieces of `{adapt.get('style')}`"))
    return ["## Training", "", *_table(("", ""), rows), ""]


def _loss_section(facts: dict[str, Any]) -> list[str]:
    losses = facts["losses"]
    stages = [s["name"] for s in facts["curriculum"]["stages"]] or sorted(losses["final_val"])
    rows = [(s, losses["final_val"].get(s), losses["best_val"].get(s), losses["test"].get(s)) for s in stages]
    note = "Cross-entropy in nats per token over every held-out token of each stage (test: scored once, at the end)."
    return ["## Losses per stage", "", note, "", *_table(("stage", "final validation", "best validation", "test"), rows), ""]


def _novelty_section(facts: dict[str, Any]) -> list[str]:
    novelty = facts.get("novelty") or {}
    lines = ["## Copying and novelty of its samples", ""]
    if not novelty:
        return lines + [
            "This run has no novelty report of samples drawn from these weights, so no copy rate is given. "
            "`curricmusic generate` then `curricmusic novelty` on the run folder measure it.",
            "",
        ]
    rows = []
    for key, label in (("blocked", "copy-blocking on"), ("unblocked", "copy-blocking off")):
        if key in novelty:
            n = novelty[key]
            embedder = f"{n.get('embedder')}{'' if n.get('weights_real') else ' (no real embedding weights)'}"
            rows.append((label, n.get("n"), n.get("n_flagged"), n.get("copy_rate"), n.get("longest_copied_notes_max"),
                         n.get("copied_bars_max"), n.get("rho_median"), n.get("data_copying_C_T"), embedder))  # fmt: skip
    header = ("samples", "n", "flagged", "copy rate", "longest copied span (notes)", "most bars copied",
              "median distance ratio", "C_T", "embedder")  # fmt: skip
    note = (
        "Flagged samples copy a long span of a training piece or sit closer to one than held-out music does; the "
        "distance ratio compares a sample's nearest training piece with held-out pieces' (below 1: closer than "
        "fresh music); C_T is the data-copying statistic (negative: closer to the training set than held-out music). "
        f"Few samples give coarse rates: these are {', '.join(str(r[1]) for r in rows)} samples."
    )
    return lines + [note, "", *_table(header, rows), ""]


def _use_sections(facts: dict[str, Any]) -> list[str]:
    kind, where = facts["tokenizer"]["kind"], facts.get("where") or "."
    gen = facts["generate"]
    return [
        "## Intended use",
        "",
        "Research on symbolic music generation and on whether learning order matters (curriculum learning); a "
        "starting point to fine-tune on another style (`init_from` in a curricmusic experiment, or any "
        "transformers fine-tuning tool); listening studies. Not for passing off its output as human-made, and not "
        "without checking samples for copies of the training data when they are published.",
        "",
        "## Limitations",
        "",
        f"- A model trained on {_n(facts['training'].get('tokens_seen'))} tokens of the stages above: it knows "
        "only what they hold (one piano stream; no other instruments, no lyrics).",
        "- transformers' `generate` samples the raw model. curricmusic's own sampler adds a grammar mask (every "
        "sample decodes cleanly), a key prior, a pitch range and copy-blocking of long training spans (the copy "
        "table says whether blocking was on for its samples). Without them, some token sequences do not "
        "decode to notes (MidiTok skips them) and copies are not blocked.",
        "- Loss figures are those of this one run and seed; they say nothing about other seeds or arms.",
        "",
        "## How to use",
        "",
        "With transformers and MidiTok (no curricmusic needed; offline once the folder is local):",
        "",
        "```python",
        usage_snippet(kind, where),
        "```",
        "",
        f"The sampling defaults in `generation_config.json` are the run's: temperature {fmt(gen['temperature'], 2)}, "
        f"top-p {fmt(gen['top_p'], 2)}, top-k {gen['top_k']} (0: off), at most {gen['max_tokens']} new tokens.",
        "",
        "With curricmusic (grammar, key prior and the run's other sampling settings; copy-blocking needs the training "
        "data, which this folder does not carry):",
        "",
        "```",
        f"curricmusic generate {where} --out samples --n 8",
        "```",
        "",
        f'To fine-tune it on your own MIDI folder, name this folder in an experiment: `init_from = "{where}"` in '
        "`[train]` (every arm starts from it) or in `[adapt]` (it is adapted beside the other models).",
        "",
    ]


def _license_section(facts: dict[str, Any]) -> list[str]:
    chosen = facts.get("license")
    text = (
        f"The weights are published under `{chosen}` by whoever exported them."
        if chosen
        else "No license was chosen for the weights at export (`curricmusic export --license ID`)."
    )
    return ["## License", "", text + " The training data's sources and their licenses are listed above.", ""]


def model_card(facts: dict[str, Any]) -> str:
    """The ``README.md`` text of an export from its facts."""
    model = facts["model"]
    intro = (
        f"A {model['parameters']:,}-parameter decoder-only transformer over MIDI tokens, trained with a curriculum by "
        "curricmusic and exported in the GPT-NeoX format: "
        "`transformers` loads it with `AutoModelForCausalLM` and no custom code, and its MidiTok "
        f"{facts['tokenizer']['kind']} tokenizer sits beside it."
    )
    sections = [
        _model_section(facts), _curriculum_section(facts), _training_section(facts), _loss_section(facts),
        _novelty_section(facts), _use_sections(facts), _license_section(facts),
    ]  # fmt: skip
    lines = [*_metadata(facts), f"# {facts['name']}", "", intro, ""]
    for section in sections:
        lines += section
    return "\n".join(lines).rstrip() + "\n"
