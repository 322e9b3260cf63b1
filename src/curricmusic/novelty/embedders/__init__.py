"""Embedders for novelty scoring, one file each, in one registry.

``load_embedder(spec)`` parses an embedder SPEC (the CLI's ``--embedder``):

==============================  ==========================================================
``clap:<HF id | dir | .pt>``    LAION CLAP audio embeddings (:mod:`.clap`)
``audio-features``              MFCC / chroma / spectral-contrast / onset statistics (librosa)
``symbolic``                    pitch-class, interval, rhythm histograms of the notes
==============================  ==========================================================

A new embedder is one file with an :class:`~.base.Embedder` subclass and one line in
:data:`EMBEDDERS`.
"""

from __future__ import annotations

from curricmusic.common.errors import UserError
from curricmusic.novelty.embedders.audio_features import AudioFeaturesEmbedder
from curricmusic.novelty.embedders.base import Embedder, EmbedderUnavailable, resample
from curricmusic.novelty.embedders.clap import ClapEmbedder
from curricmusic.novelty.embedders.symbolic import SymbolicEmbedder

__all__ = [
    "EMBEDDERS",
    "FALLBACK",
    "SPEC_HELP",
    "AudioFeaturesEmbedder",
    "ClapEmbedder",
    "Embedder",
    "EmbedderUnavailable",
    "SymbolicEmbedder",
    "check_spec",
    "load_embedder",
    "resample",
]

# SPEC name (before the colon) -> the embedder class
EMBEDDERS: dict[str, type[Embedder]] = {
    "clap": ClapEmbedder,
    "audio-features": AudioFeaturesEmbedder,
    "symbolic": SymbolicEmbedder,
}
# used, and said so in the report, when the requested embedder cannot run here
FALLBACK = "audio-features"
SPEC_HELP = "clap:<HF id | local dir | LAION .pt file>, audio-features, symbolic"


def check_spec(spec: str) -> tuple[str, str | None]:
    """``(name, argument)`` of a SPEC, or one UserError line; loads nothing (for config checks)."""
    name, colon, argument = str(spec).strip().partition(":")
    if name not in EMBEDDERS:
        raise UserError(f"unknown embedder {spec!r}; expected {SPEC_HELP}")
    return name, (argument if colon else None)


def load_embedder(
    spec: str, *, fallback: bool = True, batch_size: int = 16, device: str | None = None
) -> Embedder:
    """The embedder for ``spec``.

    When the requested embedder cannot run here (:class:`EmbedderUnavailable`: CLAP weights or
    transformers missing) and ``fallback`` is true, returns the :data:`FALLBACK` embedder with
    ``fallback_reason`` saying where we looked and how to get the weights; with
    ``fallback=False`` that message is raised.
    """
    name, argument = check_spec(spec)
    try:
        return EMBEDDERS[name].from_spec(argument, batch_size=batch_size, device=device)
    except EmbedderUnavailable as err:
        if not fallback or name == FALLBACK:
            raise
        reason = str(err)
    embedder = EMBEDDERS[FALLBACK].from_spec(None)
    embedder.fallback_reason = f"{reason}. Using the {FALLBACK} embedder instead (no learned weights)."
    embedder.requested_spec = spec
    return embedder
