"""What a reader sees (issue 20): pages that agree with themselves, read in 30 seconds, and no
musical data lost without a word.

A 2-arm x 2-seed experiment runs end to end through the command line; its report.html,
novelty.html and compare.html are parsed and checked point by point: no raw Markdown, no interval
where 2 seeds cannot give one (pages, results.json, figures, the command's own lines), numbers
to their precision, the opening lines, compare's labels. report.html is laid out in headless
Chromium at 1280 px (skipped without Chromium). Then the data side: an 8/4 piece and a 2/2 piece
are counted and named by ``data prepare`` and ``data show``, and ``generate`` warns about a
prompt whose last bar starts no note, a prompt longer than the context, and a tokenizer that
drops the prompt's meter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from symusic import Score, Tempo, TimeSignature

from curricmusic.music.notes import make_notes, notes_to_score
from tests.helpers import melody_midi, run_cli

SEEDS = 2
#: Two small generated stages: seconds to prepare, and little to evaluate.
CURRICULUM = """
name = "reader"
seed = 0
keys = ["C", "a"]
target_stage = "etudes"
[split]
val = 0.2
test = 0.2
[[stages]]
name = "scales"
source = "generated"
generator = "scales"
options = { max_pieces = 12 }
[[stages]]
name = "etudes"
source = "generated"
generator = "etudes"
options = { pieces_per_key = 4 }
"""

EXPERIMENT = """
name = "reader"
description = "Two arms, two seeds: too few for any interval."
curriculum = "reader_curriculum.toml"
seeds = [0, 1]
[model]
size = "tiny"
d_model = 32
n_layers = 1
n_heads = 2
[train]
tokens = 2048
seq_len = 32
batch_size = 8
eval_every = 4
log_every = 4
checkpoint_every = 8
[[arms]]
name = "curriculum"
pacing = "fixed"
stage_fractions = [0.5]
[[arms]]
name = "random"
pacing = "random"
[generate]
n = 2
max_bars = 2
max_tokens = 64
max_copy_notes = 64  # longer than any sample: nothing is blocked, so the unblocked samples are the same files
[novelty]
embedder = "symbolic"
[probe]
enabled = false
"""

INTERVAL = re.compile(r"\[-?[\d,.]+x?, -?[\d,.]+x?\]")  # a printed interval: [low, high]
LONG_FLOAT = re.compile(r"\d\.\d{5,}")  # a float printed in full


class Page(HTMLParser):
    """The visible text of a page (outside <style>, <pre> and <script>), its tables (rows of cell
    texts), the class of every element, and where each table sits."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.classes: list[str] = []
        self.tags: list[str] = []
        self.scrolling_tables = 0
        self._skip = 0
        self._scroll_depth: list[bool] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        self.classes += (attributes.get("class") or "").split()
        if tag in ("style", "pre", "script"):
            self._skip += 1
        if tag == "div":
            self._scroll_depth.append("scroll" in (attributes.get("class") or "").split())
        if tag == "table":
            self.tables.append([])
            self.scrolling_tables += any(self._scroll_depth)
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("style", "pre", "script"):
            self._skip -= 1
        if tag == "div" and self._scroll_depth:
            self._scroll_depth.pop()
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)
            if self._cell is not None:
                self._cell.append(data)

    @property
    def visible(self) -> str:
        return " ".join(self.text)


def assert_no_raw_markdown(text: str) -> None:
    for fragment in ("**", "`", "|---", "## ", "### ", "](figures/"):
        assert fragment not in text, fragment


def assert_numbers_to_their_precision(text: str) -> None:
    assert not LONG_FLOAT.findall(text), LONG_FLOAT.findall(text)[:5]
    assert not re.findall(r"\b\d{5,}\b", text), re.findall(r"\b\d{5,}\b", text)[:5]  # 12288 is 12,288


def _cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250"}  # rich tables unwrapped
    done = subprocess.run([sys.executable, "-m", "curricmusic", *(str(a) for a in args)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """``curricmusic run`` of 2 arms x 2 seeds, then ``compare`` of one run's blocked and unblocked
    samples and another arm's: the folder, the run command's output and the compare command's."""
    root = tmp_path_factory.mktemp("reader")
    (root / "reader.toml").write_text(EXPERIMENT)
    (root / "reader_curriculum.toml").write_text(CURRICULUM)
    out = _cli("run", root / "reader.toml", "--out", root / "exp").stdout
    runs = root / "exp" / "runs"
    sets = [runs / "curriculum-seed0" / "novelty", runs / "curriculum-seed0" / "novelty-unblocked", runs / "random-seed1" / "novelty"]
    compared = _cli("compare", *sets, "--out", root / "compare").stdout
    return root, out, compared


def test_report_html_opens_with_the_answer_and_shows_no_interval_two_seeds_cannot_give(experiment):
    root, out, _ = experiment
    text = (root / "exp" / "report.html").read_text()
    page = Page(text)
    assert_no_raw_markdown(page.visible)
    assert not INTERVAL.findall(page.visible), INTERVAL.findall(page.visible)[:5]
    assert_numbers_to_their_precision(page.visible)
    # the opening: right under the title, at most ten lines, one per arm, then copying
    opening = text[text.index('<div class="answer">') : text.index('<div class="banner')]
    items = re.findall(r"<li>(.*?)</li>", opening, re.S)
    assert len(items) <= 10 and len(re.findall(r"<p>", opening)) == 1
    assert "cannot say whether learning order matters: a 95% interval needs 3" in opening
    assert items[0].startswith("<strong>curriculum</strong> against random (too few seeds for an interval: 2 paired)")
    assert "seed by seed:" in items[0] and items[-1].startswith("Copying:")
    # every table scrolls in its own box; the chosen embedder is not a red banner
    assert page.scrolling_tables == len(page.tables) > 5
    assert "chosen" in page.classes and "fake" not in page.classes
    # the comparisons: each seed's difference, no d_z, no detectable difference
    comparisons = next(t for t in page.tables if t[0][:3] == ["arm", "baseline", "metric"])
    for row in comparisons[1:]:
        assert row[3] == "2" and "(seeds: " in row[4] and row[6] == "-" and row[9] == "-", row
    # the command line printed the same opening, formatted the same way
    assert "cannot say whether learning order matters" in out and "curriculum against random" in out
    assert not INTERVAL.findall(out) and not LONG_FLOAT.findall(out)


def test_results_json_and_the_figures_follow_the_same_rule(experiment, monkeypatch):
    root, _, _ = experiment
    results = json.loads((root / "exp" / "results.json").read_text())
    for arm in results["arms"].values():
        for name, stats in arm["summary"].items():
            if stats.get("n"):
                assert stats["ci_low"] is None and stats["ci_high"] is None, name
                assert stats["no_interval"] == "2 seeds: a 95% interval needs 3 or more", name
    for row in results["comparisons"]:
        assert row["n_pairs"] == SEEDS and row["no_interval"] and len(row["pairs"]) == SEEDS
        assert all(row[key] is None for key in ("diff_ci_low", "diff_ci_high", "ratio_ci_low", "ratio_ci_high", "d_z", "p_value"))
    # the figures draw no error bar (a min-max band of the seeds is not an interval)
    import matplotlib.axes

    drawn = []
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", lambda self, *a, **k: drawn.append(a))
    from curricmusic.reporting.report import report_figures

    figures = report_figures(results)
    assert drawn == [] and any(isinstance(png, bytes) for _, png, _ in figures)
    md = (root / "exp" / "report.md").read_text()
    assert not INTERVAL.findall(md.split("## Figures")[0])


def test_novelty_html_explains_each_score_and_scrolls_its_samples(experiment):
    root, _, _ = experiment
    text = (root / "exp" / "runs" / "curriculum-seed0" / "novelty" / "novelty.html").read_text()
    page = Page(text)
    assert_no_raw_markdown(page.visible)
    assert_numbers_to_their_precision(page.visible)
    figures = page.tables[0]
    assert figures[0] == ["figure", "value", "how to read it"]
    read = {row[0]: row[2] for row in figures[1:]}
    assert read["median rho"].startswith("median rho above 1:") and read["data-copying statistic C_T"].startswith("C_T")
    samples = next(t for t in page.tables if t[0][:2] == ["sample", "flagged"])
    assert len(samples) == 1 + 2 and page.scrolling_tables == len(page.tables)
    assert "as requested" in page.visible and "fake" not in page.classes


def test_compare_html_names_each_set_by_what_it_is_and_marks_identical_ones(experiment):
    root, _, cli_out = experiment
    text = (root / "compare" / "compare.html").read_text()
    page = Page(text)
    assert_no_raw_markdown(page.visible)
    table = page.tables[0]
    assert table[0] == ["set", "curriculum, seed 0, copy-blocking on", "curriculum, seed 0, copy-blocking off", "random, seed 1, copy-blocking on"]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows["arm"] == ["curriculum", "curriculum", "random"] and rows["seed"] == ["0", "0", "1"]
    assert rows["copy-blocking"] == ["on", "off", "on"]
    assert all(cell.startswith("run ") and "(bank: " in cell for cell in rows["scored against"])
    assert rows["scored against"][0] == rows["scored against"][1] != rows["scored against"][2]
    # copy-blocking blocked nothing here: the unblocked set is the same files, and the page says so
    assert rows["identical samples"][:2] == ["same files as curriculum, seed 0, copy-blocking off", "same files as curriculum, seed 0, copy-blocking on"]
    assert rows["identical samples"][2] == "-" and "Identical sample sets" in page.visible
    links = re.findall(r'href="([^"]+)">novelty page', text)
    assert len(links) == 3 and all((root / "compare" / link).resolve().is_file() for link in links)
    assert text.count("data:image/png;base64,") == 1  # distributions side by side
    assert any(key.startswith("median rho") for key in rows) and "C_T" in " ".join(rows)
    assert "curriculum, seed 0, copy-blocking on" in cli_out and "identical samples" in cli_out


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)
_MEASURE = """<script>
const width = window.innerWidth;
const boxes = [...document.querySelectorAll('table')].map(t => (t.closest('.scroll') || t).getBoundingClientRect().right);
document.getElementById('measured').textContent = JSON.stringify({width, page: document.documentElement.scrollWidth, boxes});
</script>"""


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'profile'}", "--hide-scrollbars", "--window-size=1280,2000"]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_report_html_fits_a_1280_pixel_page_in_chromium(experiment, tmp_path):
    """A screenshot at 1280 px, and in a copy of the page with a measuring script (the report
    itself has none), the right edge of every table's box and the page's width."""
    root, _, _ = experiment
    page = root / "exp" / "report.html"
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(shot.read_bytes()[16:20], "big") == 1280
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", f"<pre id='measured'></pre>{_MEASURE}</body>"))
    dom = _chromium("--dump-dom", "--virtual-time-budget=5000", measured.as_uri(), tmp=tmp_path).stdout
    found = re.search(r"<pre id=\"measured\">(.*?)</pre>", dom)
    assert found, dom[-2000:]
    sizes = json.loads(found.group(1))
    assert sizes["page"] <= sizes["width"] == 1280  # nothing pushes the page sideways
    assert len(sizes["boxes"]) > 5 and max(sizes["boxes"]) <= sizes["width"]


# ---- musical data never lost without a word -----------------------------------------------------


def _changing_meter() -> bytes:
    """An etude in 8/4, then 3/4, then 8/4 again, at 300 qpm (above the default tempo range)."""
    notes = make_notes(np.arange(19.0), [1.0] * 19, [60 + (i * 7) % 12 for i in range(19)])
    score = notes_to_score(notes, time_signature=(8, 4), qpm=300)
    score.time_signatures.append(TimeSignature(8 * 480, 3, 4))
    score.time_signatures.append(TimeSignature(11 * 480, 8, 4))
    return score.dumps_midi()


def _alla_breve() -> bytes:
    return notes_to_score(make_notes(np.arange(16.0), [1.0] * 16, [62 + i % 5 for i in range(16)]), time_signature=(2, 2)).dumps_midi()


@pytest.fixture
def meters(tmp_path) -> Path:
    folder = tmp_path / "meters"
    folder.mkdir()
    (folder / "etude_8_4.mid").write_bytes(_changing_meter())
    (folder / "march_2_2.mid").write_bytes(_alla_breve())
    for i in range(4):
        (folder / f"tune{i}.mid").write_bytes(melody_midi(i))
    return folder


def test_prepare_and_show_count_and_name_the_meters_and_tempos_the_tokenizer_cannot_write(meters, tmp_path, monkeypatch, capsys):
    status, out, err = run_cli(monkeypatch, capsys, "data", "prepare", meters, "--out", tmp_path / "prepared", "--workers", "1")
    assert status == 0, err
    said = " ".join((out + err).split())
    assert "2 piece(s) with a time signature the tokenizer cannot write (8/4 in 1 piece: " in said
    assert "2/2 in 1 piece: " in said and "add them to [tokenizer] time_signatures" in said
    assert "1 piece(s) with a tempo the tokenizer cannot write (300 qpm in 1 piece: " in said
    assert "train tokens" in out and "tokens, all splits" in out  # the table says which splits it counts
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    lost = manifest["unwritable"]
    assert {key: len(ids) for key, ids in lost["time_signatures"].items()} == {"8/4": 1, "2/2": 1}
    assert list(lost["tempos"]) == ["300"] and lost["tokenizer"]["tempo_range"] == [40, 250]
    rows = {p["id"]: p for s in manifest["stages"] for split in s["splits"].values() for p in split["pieces"]}
    etude = next(p for i, p in rows.items() if "etude_8_4" in i)
    assert etude["unwritable"] == {"time_signatures": ["8/4"], "tempos": [300.0]}
    assert sum("unwritable" in p for p in rows.values()) == 2
    status, out, err = run_cli(monkeypatch, capsys, "data", "show", tmp_path / "prepared")
    assert status == 0 and "8/4 in 1 piece" in " ".join((out + err).split())


def test_a_curriculum_that_lists_the_meters_keeps_them(meters, tmp_path, monkeypatch, capsys):
    curriculum = tmp_path / "wide.toml"
    curriculum.write_text(
        f'name = "wide"\n[tokenizer]\ntime_signatures = ["4/4", "3/4", "8/4", "2/2"]\ntempo_range = [40, 320]\n'
        f'num_tempos = 281\n[[stages]]\nname = "pieces"\nsource = "midi_dir"\npath = "{meters}"\n'
    )
    status, out, err = run_cli(monkeypatch, capsys, "data", "prepare", curriculum, "--out", tmp_path / "prepared", "--workers", "1")
    assert status == 0, err
    assert "cannot write" not in out + err
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert manifest["unwritable"]["time_signatures"] == {} and manifest["unwritable"]["tempos"] == {}
    status, _, err = run_cli(monkeypatch, capsys, "data", "show", tmp_path / "prepared", "--stage", "pieces",
                             "--split", "train", "--limit", "10", "--export-midi", tmp_path / "examples")  # fmt: skip
    assert status == 0, err
    exported = next((tmp_path / "examples" / "pieces").glob("*etude_8_4*"), None)
    if exported is None:  # the etude went to another split: export that one
        split = next(s for s, v in manifest["stages"][0]["splits"].items() if any("etude_8_4" in p["id"] for p in v["pieces"]))
        run_cli(monkeypatch, capsys, "data", "show", tmp_path / "prepared", "--stage", "pieces", "--split", split,
                "--limit", "10", "--export-midi", tmp_path / "examples")  # fmt: skip
        exported = next((tmp_path / "examples" / "pieces").glob("*etude_8_4*"))
    score = Score(str(exported))
    meters_back = [(t.time / score.tpq, t.numerator, t.denominator) for t in score.time_signatures]
    assert meters_back == [(0, 8, 4), (8, 3, 4), (11, 8, 4)]  # the 8/4 bars come back as 8/4, to the end
    status, _, err = run_cli(monkeypatch, capsys, "data", "show", tmp_path / "prepared", "--split", "dev", "--export-midi", tmp_path / "x")
    assert status == 2 and "--split: expected one of train, val, test" in err and not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def tiny_run(experiment) -> Path:
    """A trained run of the experiment (seq_len 32: 16 tokens of prompt at most)."""
    return experiment[0] / "exp" / "runs" / "random-seed0"


def test_generate_warns_about_a_prompt_whose_last_bar_starts_no_note(tiny_run, tmp_path, monkeypatch, capsys):
    held = make_notes([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0], [60, 62, 64, 65])  # the last note holds through bar 2
    prompt = tmp_path / "held.mid"
    prompt.write_bytes(notes_to_score(held).dumps_midi())
    status, out, err = run_cli(monkeypatch, capsys, "generate", tiny_run, "--prompt", prompt, "--prompt-bars", "1",
                               "--n", "2", "--out", tmp_path / "samples")  # fmt: skip
    assert status == 0, err
    said = " ".join(err.split())
    assert "the last 1 bar(s) of the prompt start no note" in said and "use more --prompt-bars" in said
    manifest = json.loads((tmp_path / "samples" / "manifest.json").read_text())
    assert any("start no note" in w for w in manifest["warnings"]) and manifest["prompt_bars"] == 1
    assert re.search(r"2 samples.*new notes", out)


def test_generate_names_seq_len_when_not_even_one_bar_fits(tiny_run, tmp_path, monkeypatch, capsys):
    dense = make_notes(np.repeat(np.arange(4.0), 6), [1.0] * 24, [48 + i for i in range(24)])  # 6-note chords
    prompt = tmp_path / "dense.mid"
    prompt.write_bytes(notes_to_score(dense).dumps_midi())
    status, _, err = run_cli(monkeypatch, capsys, "generate", tiny_run, "--prompt", prompt, "--prompt-bars", "1", "--out", tmp_path / "s")
    assert status == 2 and "even one bar of the prompt is" in err and "train.seq_len" in err and "--prompt-bars" not in err
    whole_notes = make_notes(np.arange(0.0, 32.0, 4.0), [4.0] * 8, [60 + i for i in range(8)])  # a bar fits, 4 do not
    prompt.write_bytes(notes_to_score(whole_notes).dumps_midi())
    status, _, err = run_cli(monkeypatch, capsys, "generate", tiny_run, "--prompt", prompt, "--prompt-bars", "4", "--out", tmp_path / "s")
    assert status == 2 and re.search(r"the last 4 bars of the prompt are \d+ tokens, .* use --prompt-bars [123] or fewer", err)
    # left to its default, the prompt takes as many of its last 4 bars as fit, and says so
    status, _, err = run_cli(monkeypatch, capsys, "generate", tiny_run, "--prompt", prompt, "--n", "1", "--out", tmp_path / "s")
    assert status == 0 and "continuing its last" in err and "do not fit in half the model's context" in err


def test_generate_warns_when_the_tokenizer_drops_the_prompts_meter_and_tempo(tiny_run, tmp_path, monkeypatch, capsys):
    slow = notes_to_score(make_notes(np.arange(0.0, 18.0, 6.0), [6.0] * 3, [60, 64, 67]), time_signature=(3, 2), qpm=72)
    slow.tempos.append(Tempo(480 * 6, qpm=400))  # from the second bar on
    prompt = tmp_path / "slow.mid"
    prompt.write_bytes(slow.dumps_midi())
    status, _, err = run_cli(monkeypatch, capsys, "generate", tiny_run, "--prompt", prompt, "--prompt-bars", "1", "--n", "1",
                             "--out", tmp_path / "s")  # fmt: skip
    assert status == 0, err
    said = " ".join(err.split())
    assert "the tokenizer drops the prompt's time signature 3/2 (not among the tokenizer's time_signatures)" in said
    assert "tempo 400 qpm (outside its tempo_range 40-250)" in said


def test_empty_samples_are_counted_and_min_notes_draws_them_again(tiny_run, tmp_path, monkeypatch, capsys):
    from curricmusic.generation.output import samples_line

    manifest = {"samples": [{"n_notes": 0, "n_new_notes": 0}, {"n_notes": 20, "n_new_notes": 20}], "settings": {"min_notes": 0}}
    assert samples_line(manifest) == "2 samples (1 of 2 empty: no new note; --min-notes 1 draws such samples again), 20 notes"
    status, out, err = run_cli(monkeypatch, capsys, "generate", tiny_run, "--n", "2", "--out", tmp_path / "plain")
    assert status == 0, err
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    # a bar of the tiny model's notes is never 10,000: every sample is drawn again, 4 times, each time with a new seed
    status, out, err = run_cli(monkeypatch, capsys, "generate", tiny_run, "--n", "2", "--min-notes", "10000", "--out", tmp_path / "again")
    assert status == 0, err
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [row["redraws"] for row in again["samples"]] == [4, 4]
    assert all(a["seed"] != b["seed"] for a, b in zip(again["samples"], plain["samples"], strict=True))
    assert "2 drawn again for having fewer than 10000 new notes" in " ".join(out.split())
