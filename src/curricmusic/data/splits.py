"""Which split each piece goes to: whole tune groups, from a stable hash, across stages.

A group (pieces that share a tune, see :mod:`curricmusic.data.tunes`; or a single piece when
splitting by content) is named by its *key*: the SHA-256 of the smallest content hash among its
pieces (hashed again because the least of many hashes is small: unhashed, large groups would
crowd into the test split). The group goes to one split for every stage it touches: ``test`` if ``u < test``, ``val`` if
``u < test + val``, else ``train``, with ``u`` in [0, 1) read from the key. A piece never moves
unless its group changes, so adding unrelated pieces leaves every existing split as it was.

A stage with at least three groups always keeps a validation and a test group when those
fractions are positive: if the hash gave it none, the smallest of its training groups that lies
in this stage only (ties: lowest ``u``) moves there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["assign_split", "split_position", "group_keys", "group_splits"]


def split_position(content_hash: str) -> float:
    """``u`` in [0, 1) from the first 12 hex digits of a hash."""
    return int(content_hash[:12], 16) / float(16**12)


def assign_split(content_hash: str, val: float, test: float) -> str:
    """``test`` if u < test, ``val`` if u < test + val, else ``train``; u in [0, 1) from the hash."""
    u = split_position(content_hash)
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"


def group_keys(keys: Sequence[str], groups: np.ndarray) -> list[str]:
    """Each piece's group key: ``sha256(smallest content hash in its group)[:20]``.

    A group of one piece keeps its own content hash (so splitting by content is unchanged).
    """
    smallest: dict[int, str] = {}
    size: dict[int, int] = {}
    for key, group in zip(keys, np.asarray(groups).tolist(), strict=True):
        size[group] = size.get(group, 0) + 1
        if group not in smallest or key < smallest[group]:
            smallest[group] = key
    named = {
        g: key if size[g] == 1 else hashlib.sha256(key.encode()).hexdigest()[:20]
        for g, key in smallest.items()
    }
    return [named[g] for g in np.asarray(groups).tolist()]


def group_splits(
    stages: Sequence[str], keys: Sequence[str], groups: np.ndarray, val: float, test: float
) -> list[str]:
    """The split of every piece (``stages[i]``, content hash ``keys[i]``, group ``groups[i]``)."""
    named = group_keys(keys, groups)
    split = {key: assign_split(key, val, test) for key in named}
    members: dict[str, list[int]] = {}
    for i, key in enumerate(named):
        members.setdefault(key, []).append(i)
    for stage in dict.fromkeys(stages):  # stages in order of first appearance
        mine = {named[i] for i, s in enumerate(stages) if s == stage}
        if len(mine) < 3:
            continue
        for held, fraction in (("val", val), ("test", test)):
            if fraction <= 0 or any(split[k] == held for k in mine):
                continue
            own = [
                k for k in mine
                if split[k] == "train" and all(stages[i] == stage for i in members[k])
            ]  # fmt: skip
            train_groups = [k for k in mine if split[k] == "train"]
            if not own or len(train_groups) < 2:
                continue
            moved = min(own, key=lambda k: (len(members[k]), split_position(k)))
            split[moved] = held
    return [split[key] for key in named]
