"""The MidiTok tokenizer of a shared model folder, saved and read with MidiTok's own Hub methods.

``curricmusic export`` writes the run's tokenizer with ``save_pretrained`` (MidiTok's
``tokenizer.json``: its class, config and versions), so ``miditok.REMI.from_pretrained(DIR)``
(or the kind's class) loads it; :func:`load_folder_tokenizer` reads such a folder back offline.
:func:`vocabulary_difference` says, in one phrase, how two tokenizers' vocabularies differ: a
model can only start from weights that were trained on the same token ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from curricmusic.common.errors import UserError
from curricmusic.music.kinds import KINDS
from curricmusic.music.tokenizers import SPECIAL_TOKENS, Tokenizer

__all__ = ["MIDITOK_FILE", "save_folder_tokenizer", "load_folder_tokenizer", "vocabulary_difference"]

MIDITOK_FILE = "tokenizer.json"  # the name MidiTok's save_pretrained / from_pretrained use


def save_folder_tokenizer(tokenizer: Tokenizer, directory: str | Path) -> Path:
    """``tokenizer.save_pretrained(directory)``: MidiTok's ``tokenizer.json``. Returns its path."""
    tokenizer.save_pretrained(str(directory))  # type: ignore[attr-defined]  # every MidiTok tokenizer has it
    return Path(directory) / MIDITOK_FILE


def _tokenization(path: Path) -> str:
    """The MidiTok class named by a saved tokenizer file, or one line saying what is wrong."""
    try:
        params = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not readable JSON ({error})") from None
    name = params.get("tokenization") if isinstance(params, dict) else None
    if not isinstance(name, str):
        raise UserError(f"{path}: not a MidiTok tokenizer file (no 'tokenization'); save it with MidiTok's save_pretrained")
    if name not in KINDS:
        raise UserError(f"{path}: a MidiTok {name} tokenizer; curricmusic models use one of: {', '.join(KINDS)}")
    return name


def load_folder_tokenizer(directory: str | Path) -> Tokenizer:
    """The MidiTok tokenizer saved in ``directory`` (``from_pretrained`` on the local folder,
    never the network), checked to hold the special tokens curricmusic frames pieces with."""
    import miditok  # heavy: only where a tokenizer is read

    directory = Path(directory)
    path = directory / MIDITOK_FILE
    if not path.is_file():
        raise UserError(
            f"{directory}: no {MIDITOK_FILE} beside the model; save the model's MidiTok tokenizer there "
            "(tokenizer.save_pretrained(folder)) so its token ids can be checked"
        )
    kind = getattr(miditok, _tokenization(path))
    try:
        tokenizer = kind(params=path)  # what from_pretrained does for a local folder, without the Hub
    except Exception as error:  # noqa: BLE001 - MidiTok raises several types on a bad file
        raise UserError(f"{path}: MidiTok cannot read this tokenizer ({type(error).__name__}: {error})") from None
    if getattr(tokenizer, "is_trained", False):
        raise UserError(f"{path}: a BPE-trained MidiTok tokenizer; curricmusic models use untrained (one token per event) vocabularies")
    missing = [f"{name}_None" for name in SPECIAL_TOKENS if f"{name}_None" not in tokenizer.vocab]
    if missing:
        raise UserError(f"{path}: the tokenizer lacks the special token(s) {', '.join(missing)} that curricmusic needs")
    return tokenizer


def vocabulary_difference(theirs: Tokenizer, ours: Tokenizer) -> str | None:
    """None when both map the same tokens to the same ids (and are the same MidiTok class), else
    a phrase naming the first difference."""
    if type(theirs).__name__ != type(ours).__name__:
        return f"a {type(theirs).__name__} tokenizer where the experiment's is {type(ours).__name__}"
    mine, other = ours.vocab, theirs.vocab
    if len(mine) != len(other):
        extra, lacking = sorted(set(other) - set(mine)), sorted(set(mine) - set(other))
        parts = [f"{label} {names[0]!r}{f' and {len(names) - 1} more' if len(names) > 1 else ''}"
                 for label, names in (("it has", extra), ("it lacks", lacking)) if names]  # fmt: skip
        return f"{len(other)} tokens where the experiment's tokenizer has {len(mine)}; {', '.join(parts)}"
    for token, index in sorted(mine.items(), key=lambda item: item[1]):
        if other.get(token) != index:
            where = other.get(token)
            return f"token {token!r} has id {where} where the experiment's tokenizer has {index}" if where is not None else (
                f"token {token!r} of the experiment's tokenizer is missing"
            )
    return None
