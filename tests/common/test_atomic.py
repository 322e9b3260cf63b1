"""Atomic writes: all or nothing, with ordinary file permissions."""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest

from curricmusic.common.atomic import atomic_path, json_safe, write_json, write_text


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_text(tmp_path / "report.html", "<html></html>")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_numpy_save_through_a_suffix_keeps_its_data(tmp_path):
    target = tmp_path / "x.npy"
    with atomic_path(target, suffix=".npy") as tmp:
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(target), [0, 1, 2])


def test_json_is_standard_json():
    assert json_safe({"a": math.nan, "b": [np.float32(1.5), np.int64(2)], "c": math.inf}) == {"a": None, "b": [1.5, 2], "c": None}


def test_write_json_rejects_nothing_it_made_safe(tmp_path):
    path = write_json(tmp_path / "r.json", {"x": float("nan")})
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == '{"x":null}'
