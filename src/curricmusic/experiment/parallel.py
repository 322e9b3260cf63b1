"""``curricmusic run --jobs N``: the cells of an experiment, N at a time, on one machine.

Each job runs in its own process (started with ``spawn``: nothing of the parent's torch state is
shared) with ``threads`` intra-op threads: the machine's cores shared out. A job is a
cell (train, probe, adapt; exactly what the one-at-a-time runner does, through
:func:`~curricmusic.experiment.runner.run_cell`) or one seed's from-scratch adaptation.

Order and dependencies: jobs start in the order given; a job that reads another's finished run
(a ``random-matched`` cell matching an adaptive arm reads the same seed's run of that arm) starts
only after that one has ended. Every job writes only its own run folder, under that folder's
lock, so two jobs never write into one folder.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
from multiprocessing.process import BaseProcess

from curricmusic.common.errors import UserError
from curricmusic.common.progress import console, err_console

__all__ = ["Job", "run_jobs", "threads_per_job"]


@dataclass(frozen=True)
class Job:
    """One unit of work: ``function(*args)`` in a worker process, returning a status line
    (``done`` / ``failed``). ``after`` names the jobs that must have ended before it starts."""

    name: str
    function: Callable[..., str]
    args: tuple
    after: frozenset[str] = field(default_factory=frozenset)


def threads_per_job(jobs: int) -> int:
    """Intra-op threads for each of ``jobs`` processes: the usable cores shared out, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


def _run_job(conn: Connection, threads: int, function: Callable[..., str], args: tuple) -> None:
    """In the job's own process: its share of the cores, then the job; the outcome goes back
    through ``conn`` as ``(kind, text)``."""
    import torch

    # The parent passes its own interrupt on with SIGINT: heard as KeyboardInterrupt even where
    # the parent was started with SIGINT ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(threads)
    try:
        outcome = ("status", function(*args))
    except KeyboardInterrupt:  # the parent was interrupted and passed it on: the checkpoint stays
        outcome = ("error", "interrupted; `--resume` continues")
    except UserError as exc:
        outcome = ("user-error", str(exc))
    except Exception as exc:  # noqa: BLE001 - reported by the parent, one line
        outcome = ("error", f"{type(exc).__name__}: {exc}")
    conn.send((outcome[0], outcome[1][:2000]))  # short: a pipe's buffer holds it before the parent reads
    conn.close()


def run_jobs(jobs: Sequence[Job], workers: int) -> dict[str, str]:
    """Run ``jobs``, at most ``workers`` at once, each in a process of its own that starts when
    the jobs it waits for have ended; returns every job's status. A job whose process died is
    ``failed`` (its run folder has no ``cell.json``: ``run --resume`` redoes it) and the others go
    on. A job that stops on a user error (another process holds its folder) stops the start of
    new jobs; that error is raised once the running ones have ended."""
    if workers < 1:
        raise UserError(f"--jobs must be at least 1, not {workers}")
    names = {job.name for job in jobs}
    for job in jobs:
        unknown = job.after - names
        if unknown:
            raise ValueError(f"job {job.name} waits for unknown jobs: {sorted(unknown)}")
    threads = threads_per_job(workers)
    context = multiprocessing.get_context("spawn")
    pending = list(jobs)
    running: dict[int, tuple[Job, BaseProcess, Connection]] = {}  # by the process's sentinel
    status: dict[str, str] = {}
    stop: str | None = None
    try:
        while (pending and stop is None) or running:
            ready = [job for job in pending if job.after <= status.keys()] if stop is None else []
            for job in ready[: workers - len(running)]:
                pending.remove(job)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_run_job, args=(send, threads, job.function, job.args), name=job.name)
                process.start()
                send.close()
                running[process.sentinel] = (job, process, receive)
                console.print(f"[bold]started[/] {job.name} ({len(status) + len(running)}/{len(jobs)})", highlight=False)
            if not running:  # only jobs that wait for jobs that can never end (a cycle)
                raise ValueError(f"jobs wait for each other: {[job.name for job in pending]}")
            for sentinel in wait_for(list(running)):
                job, ended, receive = running.pop(sentinel)  # type: ignore[arg-type]  # a sentinel is an int
                ended.join()
                kind, text = _received(receive, ended)
                receive.close()
                status[job.name] = _outcome(job, kind, text)
                if kind == "user-error":
                    stop = text
    finally:
        for _, left, _ in running.values():  # interrupted: each job is told so, then waited for
            if left.is_alive() and left.pid is not None:
                os.kill(left.pid, signal.SIGINT)
        for _, left, _ in running.values():
            left.join(timeout=60)
            if left.is_alive():
                left.terminate()
    if stop is not None:
        raise UserError(stop)
    return status


def _received(receive: Connection, process: BaseProcess) -> tuple[str, str]:
    """What the job's process sent back, or why it sent nothing (it died)."""
    try:
        return receive.recv() if receive.poll() else ("error", f"its process ended with exit status {process.exitcode}")
    except EOFError:
        return ("error", f"its process ended with exit status {process.exitcode} before reporting")


def _outcome(job: Job, kind: str, text: str) -> str:
    """The job's status, with one line for the console."""
    if kind == "status":
        colour = "green" if text == "done" else "red"
        console.print(f"[{colour}]{text}[/] {job.name}", highlight=False)
        return text
    err_console.print(f"[red]{job.name} failed:[/] {text}", highlight=False)
    return "failed"
