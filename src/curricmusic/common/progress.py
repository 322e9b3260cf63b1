"""The two consoles (results on stdout, progress and errors on stderr) and progress bars that
switch off cleanly (tests, pipes, ``--quiet``).

Output to something that is not a terminal (a pipe, a log file, ``grep``) is never hard-wrapped:
rich would otherwise break every line at 80 columns, in the middle of a path or a number. There
each line is written whole (soft wrap) and tables are as wide as their content.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["console", "err_console", "progress_bar", "make_console", "PIPE_WIDTH"]

PIPE_WIDTH = 100_000  # "as wide as the content": tables and text are never cut to fit a pipe


def make_console(stderr: bool = False) -> Console:
    """A console that writes whole lines when its stream is not a terminal (see the module doc)."""
    stream = sys.stderr if stderr else sys.stdout
    is_terminal = bool(getattr(stream, "isatty", lambda: False)())
    if is_terminal:
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH)


console = make_console()  # results: tables, summaries, paths written
err_console = make_console(stderr=True)  # progress bars, warnings and errors


@contextmanager
def progress_bar(
    description: str, total: int | None, enabled: bool = True
) -> Iterator[Callable[..., None]]:
    """Yield ``update(advance=1, total=None, info=None, completed=None)``.

    The bar shows only on a terminal; elsewhere (tests, pipes, ``enabled=False``) ``update`` is a
    no-op, so library code can report progress unconditionally.
    """
    if not enabled or not err_console.is_terminal:
        yield lambda *args, **kwargs: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(description, total=total, info="")

        def update(
            advance: int = 1,
            total: int | None = None,
            info: str | None = None,
            completed: int | None = None,
        ) -> None:
            kwargs: dict = {"advance": advance} if completed is None else {"completed": completed}
            if total is not None:
                kwargs["total"] = total
            if info is not None:
                kwargs["info"] = info
            progress.update(task, **kwargs)

        yield update
