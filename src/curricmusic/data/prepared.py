"""Reading a prepared folder: the manifest, the token caches and the note caches.

Layout written by :func:`curricmusic.data.prepare.prepare`::

    DIR/manifest.json                      stages, splits, pieces, skipped files, tokenizer
    DIR/tokenizer.json                     the shared tokenizer
    DIR/stages/<stage>/<split>.tokens.bin  flat uint16 token ids, pieces back to back
    DIR/stages/<stage>/<split>.offsets.npy int64 (n_pieces + 1,) piece starts in the token file
    DIR/stages/<stage>/<split>.notes.npy   NOTE_DTYPE notes of every piece, back to back
    DIR/stages/<stage>/<split>.note_offsets.npy
    DIR/midi/<stage>/...                   MIDI of pieces that have no file elsewhere

Pieces inside a split are stored in ascending difficulty.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.common.readback import read_json

if TYPE_CHECKING:
    from curricmusic.music.tokenizers import Tokenizer

__all__ = ["SPLITS", "MANIFEST_FORMAT", "PreparedData", "split_paths"]

SPLITS = ("train", "val", "test")
MANIFEST_FORMAT = 1
#: What readers of a prepared manifest.json rely on (see curricmusic.common.readback).
MANIFEST_SCHEMA = {"format": int, "stages": list, "target_stage": str, "tokenizer": dict}


def split_paths(root: Path, stage: str, split: str) -> dict[str, Path]:
    base = root / "stages" / stage
    return {
        "tokens": base / f"{split}.tokens.bin",
        "offsets": base / f"{split}.offsets.npy",
        "notes": base / f"{split}.notes.npy",
        "note_offsets": base / f"{split}.note_offsets.npy",
    }


@dataclass
class PreparedData:
    """A prepared curriculum on disk. Token arrays are memory-mapped, never copied whole."""

    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> PreparedData:
        root = Path(root)
        path = root / "manifest.json"
        if not path.is_file():
            raise UserError(
                f"{root}: not a prepared folder (no manifest.json); run `curricmusic data prepare` first"
            )
        manifest = read_json(path, MANIFEST_SCHEMA, hint="`curricmusic data prepare --force` builds the folder again")
        assert manifest is not None
        if manifest.get("format") != MANIFEST_FORMAT:
            raise UserError(
                f"{path}: manifest format {manifest.get('format')} is not {MANIFEST_FORMAT}; prepare the data again"
            )
        return cls(root, manifest)

    # ---- what it holds
    @property
    def stage_names(self) -> list[str]:
        return [stage["name"] for stage in self.manifest["stages"]]

    @property
    def target_stage(self) -> str:
        return self.manifest["target_stage"]

    @property
    def tokenizer_hash(self) -> str:
        return self.manifest["tokenizer"]["hash"]

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def stage(self, name: str) -> dict[str, Any]:
        for stage in self.manifest["stages"]:
            if stage["name"] == name:
                return stage
        raise UserError(f"{self.root}: no stage named {name!r}; stages are: {', '.join(self.stage_names)}")

    def pieces(self, stage: str, split: str) -> list[dict[str, Any]]:
        return self.stage(stage)["splits"][split]["pieces"]

    def n_tokens(self, stage: str, split: str) -> int:
        return int(self.stage(stage)["splits"][split]["n_tokens"])

    @cached_property
    def tokenizer(self) -> Tokenizer:
        # MidiTok is heavy: imported only when tokens are decoded
        from curricmusic.music.tokenizers import load_tokenizer

        return load_tokenizer(self.root / "tokenizer.json")[0]

    # ---- arrays
    def _load(self, stage: str, split: str, kind: str) -> np.ndarray:
        path = split_paths(self.root, stage, split)[kind]
        if not path.is_file():
            raise UserError(f"{path}: missing from the prepared folder; run `curricmusic data prepare` again")
        if kind == "tokens":
            if path.stat().st_size == 0:
                return np.zeros(0, dtype=np.uint16)
            return np.memmap(path, dtype=np.uint16, mode="r")
        return np.load(path, mmap_mode="r")

    def tokens(self, stage: str, split: str) -> np.ndarray:
        """Flat uint16 token ids of a split (memory-mapped)."""
        return self._load(stage, split, "tokens")

    def offsets(self, stage: str, split: str) -> np.ndarray:
        """int64 (n_pieces + 1,): piece i holds tokens[offsets[i]:offsets[i + 1]]."""
        return np.asarray(self._load(stage, split, "offsets"))

    def piece_tokens(self, stage: str, split: str, index: int) -> np.ndarray:
        offsets = self.offsets(stage, split)
        return np.asarray(self.tokens(stage, split)[offsets[index] : offsets[index + 1]])

    def piece_notes(self, stage: str, split: str) -> list[np.ndarray]:
        """Every piece's note array, in the split's stored (difficulty) order."""
        notes = np.asarray(self._load(stage, split, "notes"))
        offsets = np.asarray(self._load(stage, split, "note_offsets"))
        return [notes[offsets[i] : offsets[i + 1]] for i in range(offsets.shape[0] - 1)]

    def piece_path(self, piece: dict[str, Any]) -> Path:
        """The MIDI file of a manifest piece (inside the folder for generated and corpus pieces)."""
        path = Path(piece["path"])
        return path if path.is_absolute() else self.root / path
