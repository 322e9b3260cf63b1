"""Rich progress bars that switch off cleanly (tests, pipes, ``--quiet``)."""

from __future__ import annotations

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

__all__ = ["console", "err_console", "progress_bar"]

console = Console()  # results: tables, summaries, paths written
err_console = Console(stderr=True)  # progress bars, warnings and errors


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
