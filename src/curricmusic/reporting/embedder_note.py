"""Which embedder produced the novelty scores, said so that a choice never reads as a failure.

Three cases, each with its own banner colour: real learned weights (green); an embedder without
learned weights that the user asked for (``audio-features``, ``symbolic``: blue, a choice); and a
fallback, where the user asked for CLAP but its weights were missing (red, with the reason).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["embedder_note", "embedders_of_results"]

_KINDS = {
    "audio-features": "MFCC, chroma, spectral contrast and onset statistics of the rendered audio",
    "symbolic": "pitch-class, interval, rhythm and density histograms of the notes",
}


def _requested(embedder: dict[str, Any]) -> str:
    return str(embedder.get("requested") or embedder.get("requested_spec") or embedder.get("spec"))


def embedder_note(embedders: Iterable[dict[str, Any]]) -> tuple[str, str]:
    """``(sentence, banner class)`` for the embedders of one or more novelty reports (their
    ``embedder`` entries): class ``real``, ``chosen`` or ``fake``."""
    entries = [e for e in embedders if e]
    if not entries:
        return "no novelty scores", ""
    specs = sorted({str(e.get("spec")) for e in entries})
    fallbacks = [e for e in entries if e.get("fallback_reason")]
    if fallbacks:
        first = fallbacks[0]
        return (
            f"embedder {', '.join(specs)}, a FALLBACK: you asked for {_requested(first)}, whose weights are missing "
            f"({first['fallback_reason']}); the distances are not CLAP's",
            "fake",
        )
    if all(e.get("weights_real") for e in entries):
        return f"embedder {', '.join(specs)} (real learned weights)", "real"
    described = "; ".join(f"{spec}: {_KINDS[spec]}" for spec in specs if spec in _KINDS)
    described = f" ({described})" if described else ""
    return f"embedder {', '.join(specs)}, as requested{described}: no learned weights, by choice, not a fallback", "chosen"


def embedders_of_results(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``embedder`` entries of every scored run of ``results.json`` (blocked samples)."""
    out = []
    for run in results.get("runs") or []:
        embedder = (run.get("novelty") or {}).get("embedder")
        if embedder:
            out.append(embedder)
    if out:
        return out
    # an older results.json without per-run entries: what the arms say
    for arm in (results.get("arms") or {}).values():
        novelty = arm.get("novelty") or {}
        for spec in novelty.get("embedders") or []:
            out.append({"spec": spec, "weights_real": novelty.get("weights_real"), "requested": spec})
    return out
