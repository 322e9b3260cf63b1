"""``run --jobs N``: jobs in worker processes, in order, each after the jobs it waits for; a
parallel experiment gives the same results as one run cell after cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curricmusic.common.errors import UserError
from curricmusic.experiment.parallel import Job, run_jobs
from tests.helpers import HANG_S, MINIMAL_EXPERIMENT


def note(log: str, text: str, pause: float = 0.0) -> str:
    """A job: sleep ``pause`` seconds, then append ``text`` and this process's id to ``log``."""
    time.sleep(pause)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"{text} {os.getpid()}\n")
    return "done"


def die() -> str:
    os._exit(3)  # a worker killed mid-job (out of memory, a signal)


def lines(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()]


def test_a_job_starts_only_after_the_jobs_it_waits_for(tmp_path):
    log = str(tmp_path / "log")
    jobs = [
        Job("slow", note, (log, "slow", 1.5)),
        Job("after-slow", note, (log, "after-slow"), frozenset(["slow"])),
        Job("free", note, (log, "free")),
    ]
    status = run_jobs(jobs, workers=2)
    assert status == {"slow": "done", "after-slow": "done", "free": "done"}
    order = lines(Path(log))
    # "free" took the second worker while "after-slow" waited, so it ran first
    assert order == ["free", "slow", "after-slow"]


def test_two_workers_run_in_two_processes_at_once(tmp_path):
    log = tmp_path / "log"
    started = time.monotonic()
    run_jobs([Job(f"j{i}", note, (str(log), f"j{i}", 1.0)) for i in range(2)], workers=2)
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert time.monotonic() - started < HANG_S


def test_a_dead_worker_fails_its_job_only(tmp_path):
    log = str(tmp_path / "log")
    status = run_jobs([Job("dies", die, ()), Job("lives", note, (log, "lives", 0.5))], workers=1)
    assert status == {"dies": "failed", "lives": "done"}
    assert lines(Path(log)) == ["lives"]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ([Job("a", note, ("x", "a"), frozenset(["b"])), Job("b", note, ("x", "b"), frozenset(["a"]))], "wait for each other"),
        ([Job("a", note, ("x", "a"), frozenset(["nobody"]))], "unknown jobs"),
    ],
)
def test_impossible_orders_are_refused(jobs, message):
    with pytest.raises(ValueError, match=message):
        run_jobs(jobs, workers=2)


def sleep_until_interrupted(log: str) -> str:
    """A job that waits (a long cell) and notes an interrupt before passing it on."""
    try:
        Path(log + ".started").touch()
        time.sleep(HANG_S)
    except KeyboardInterrupt:
        note(log, "interrupted")
        raise
    return "done"


PARENT = """
import signal
import sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as `curricmusic` does, even if started with SIGINT ignored
from curricmusic.experiment.parallel import Job, run_jobs
from tests.experiment.test_parallel import sleep_until_interrupted
run_jobs([Job("long", sleep_until_interrupted, (sys.argv[1],))], workers=1)
"""


def test_an_interrupted_parent_passes_the_interrupt_to_its_jobs(tmp_path):
    import signal

    log = tmp_path / "log"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(log)], cwd=Path(__file__).parents[2], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_S
    while not Path(str(log) + ".started").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    parent.send_signal(signal.SIGINT)  # the parent only, as `kill -INT` does (not the terminal's whole group)
    _, stderr = parent.communicate(timeout=HANG_S)
    assert parent.returncode != 0 and "KeyboardInterrupt" in stderr
    assert lines(log) == ["interrupted"]  # the job heard it: it could save its checkpoint


def refuse() -> str:
    raise UserError("somebody else's folder")


def test_a_user_error_in_a_job_stops_new_jobs_and_is_raised(tmp_path):
    log = str(tmp_path / "log")
    jobs = [Job("refused", refuse, ()), Job("next", note, (log, "next"), frozenset(["refused"]))]
    with pytest.raises(UserError, match="somebody else's folder"):
        run_jobs(jobs, workers=1)
    assert not Path(log).exists()


def test_zero_workers_is_a_user_error():
    with pytest.raises(UserError, match="at least 1"):
        run_jobs([], workers=0)


EXPERIMENT = (
    "seeds = [0]\n"
    + MINIMAL_EXPERIMENT.replace("tokens = 4096", "tokens = 6144")
    + """
[model]
size = "tiny"
d_model = 32
n_layers = 1
n_heads = 2
dropout = 0.0
[generate]
n = 0
[[arms]]
name = "pedagogy"
pacing = "mastery"
criterion = ["plateau", "plateau", "plateau"]
patience = 1
cap_tokens = 1024
[[arms]]
name = "random-matched"
pacing = "random-matched"
match = "pedagogy"
[adapt]
shots = [4]
tokens = 1024
eval_every = 2
log_every = 2
checkpoint_every = 2
styles = [{ source = "music21", collection = "oneills1850", limit = 20 }]
"""
)


def run(path: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "curricmusic", "run", str(path), "--out", str(out), *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=HANG_S)


def final_losses(out: Path) -> dict[str, dict]:
    results = json.loads((out / "results.json").read_text())
    return {f"{r['arm']}-seed{r['seed']}": r["summary"]["final_val"] for r in results["runs"]}


def test_jobs_2_gives_the_results_of_one_cell_after_another(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(EXPERIMENT)
    one, two = tmp_path / "one", tmp_path / "two"
    done = run(path, one)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run(path, two, "--jobs", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 jobs, 2 at a time" in done.stdout  # 2 cells and a from-scratch adaptation
    assert "from-scratch adaptation" not in done.stdout  # done among the jobs, not again after them
    sequential, parallel = final_losses(one), final_losses(two)
    assert sequential.keys() == parallel.keys() and len(parallel) == 2
    for cell, losses in sequential.items():  # one thread against two: the sums differ in rounding only
        assert parallel[cell] == pytest.approx(losses, rel=1e-5), cell
    for seed in (0,):  # random-matched read its pedagogy run only after that run had ended
        pedagogy_end = (two / "runs" / f"pedagogy-seed{seed}" / "cell.json").stat().st_mtime
        matched_start = (two / "runs" / f"random-matched-seed{seed}" / ".curricmusic").stat().st_mtime  # its folder mark
        assert matched_start >= pedagogy_end
        assert (two / "runs" / f"scratch-seed{seed}" / "cell.json").is_file()


def test_jobs_need_the_local_launcher(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(EXPERIMENT)
    done = run(path, tmp_path / "out", "--jobs", "2", "--launcher", "accelerate")
    assert done.returncode == 2
    assert "only with the local launcher" in done.stderr and "Traceback" not in done.stderr
