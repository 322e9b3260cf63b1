"""The one reader of files curricmusic reads back: every kind of damage is one line naming the file."""

from __future__ import annotations

import json

import pytest

from curricmusic.common.readback import DamagedFile, read_json, read_jsonl, readable

SCHEMA = {"seed": int, "loss": float, "config": dict}


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "empty"),
        (b'{"seed": "\xff"}', "not UTF-8 text at byte 10"),
        (b'{"seed": 1,', "not JSON: Expecting property name enclosed in double quotes: line 1 column 12 (char 11)"),
        (b"[1, 2]", "not a JSON object but a list"),
        (b'{"loss": 1.5, "config": {}}', "no 'seed'"),
        (b'{"seed": true, "loss": 1.5, "config": {}}', "'seed' is true/false, expected an integer"),
        (b'{"seed": 1, "loss": "low", "config": {}}', "'loss' is text, expected a number"),
    ],
)
def test_every_kind_of_damage_is_one_line_naming_the_file(tmp_path, data, what):
    path = tmp_path / "run.json"
    path.write_bytes(data)
    with pytest.raises(DamagedFile) as caught:
        read_json(path, SCHEMA, hint="rerun with --resume")
    assert str(caught.value) == f"{path}: damaged ({what}); rerun with --resume"
    assert not readable(path, SCHEMA)


def test_a_whole_file_reads_and_an_integer_is_a_number(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"seed": 3, "loss": 2, "config": {"a": 1}, "newer_key": None}))
    assert read_json(path, SCHEMA) == {"seed": 3, "loss": 2, "config": {"a": 1}, "newer_key": None}
    assert readable(path, SCHEMA)
    assert read_json(tmp_path / "missing.json", missing_ok=True) is None
    with pytest.raises(DamagedFile, match="missing.json: damaged \\(missing\\)"):
        read_json(tmp_path / "missing.json")


def test_a_file_larger_than_any_we_write_is_refused_unread(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{}" + " " * 100)
    with pytest.raises(DamagedFile, match="102 bytes, more than any file curricmusic writes"):
        read_json(path, max_bytes=64)


def test_jsonl_skips_a_torn_last_line_and_names_any_other_bad_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 4}\n{"step": 8, "lo')  # killed mid-line
    assert read_jsonl(path, {"step": int}) == [{"step": 0}, {"step": 4}]
    path.write_text('{"step": 0}\n{"step": 4\n{"step": 8}\n')
    with pytest.raises(DamagedFile, match=r"metrics.jsonl: damaged \(line 2 is not JSON: "):
        read_jsonl(path, {"step": int})
    path.write_text('{"step": 0}\n{"step": "four"}\n')
    with pytest.raises(DamagedFile, match=r"damaged \(line 2: 'step' is text, expected an integer\)"):
        read_jsonl(path, {"step": int})
    assert read_jsonl(tmp_path / "none.jsonl") == []
