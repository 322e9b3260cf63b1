"""The ``curricmusic`` command line. Each command parses, loads its config, calls one library function.

Every failure is one red line, never a traceback (:func:`main`): a user mistake
(:class:`~curricmusic.common.errors.UserError`) exits with status 2; a failure of the machine (a
read-only folder, a full disk) or anything else with status 1, as does ``run`` when any of its
runs failed. ``--debug`` (anywhere on the line) or ``CURRICMUSIC_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from curricmusic.common.errors import DEBUG_ENV, UserError, debug_enabled, error_line, out_of_memory
from curricmusic.common.numbers import fmt, sig
from curricmusic.common.paths import redirect_tool_caches
from curricmusic.common.progress import console, err_console

if TYPE_CHECKING:  # annotations only: commands import what they need when they run
    from curricmusic.config import CurriculumConfig

app = typer.Typer(
    help="Curriculum learning for symbolic music: prepare staged data, train, generate, score novelty.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Build and inspect curriculum data.", no_args_is_help=True)
app.add_typer(data_app, name="data", help="Prepare curriculum data (prepare) and look at it (show).")


def _print_version(value: bool) -> None:
    if value:
        import curricmusic

        console.print(f"curricmusic {curricmusic.__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: bool = typer.Option(
        False, "--debug", help=f"Show the full traceback of any error (same as {DEBUG_ENV}=1)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version of curricmusic and exit."
    ),
) -> None:
    """Curriculum learning for symbolic music: prepare staged data, train, generate, score novelty."""
    if debug:
        os.environ[DEBUG_ENV] = "1"  # launched sub-processes (accelerate) inherit it


def _load_curriculum_arg(path: Path) -> tuple[CurriculumConfig, str]:
    """A curriculum TOML, or a plain folder of MIDI files as a one-stage curriculum."""
    from curricmusic.config import curriculum_from_midi_dir, load_curriculum

    if path.is_dir():
        return curriculum_from_midi_dir(path), str(path)
    return load_curriculum(path), str(path)


@data_app.command("prepare")
def data_prepare(
    curriculum: Path = typer.Argument(..., help="Curriculum TOML, or a folder of MIDI files."),
    out: Path | None = typer.Option(None, "--out", help="Prepared folder (default: in the cache)."),
    workers: int = typer.Option(
        os.cpu_count() or 1, "--workers", min=1, help="Worker processes for parsing and tokenizing."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the folder is up to date."),
) -> None:
    """Build the curriculum's token caches, splits and manifest.json."""
    from curricmusic.data.prepare import prepare
    from curricmusic.data.summary import default_prepared_dir, print_summary

    config, source = _load_curriculum_arg(curriculum)
    out_dir = out or default_prepared_dir(config)
    outcome = prepare(config, out_dir, workers=workers, force=force, source=source)
    status = "up to date, reused" if outcome.reused else "written"
    console.print(f"[green]{outcome.data.root}[/] ({status})")
    print_summary(outcome.data)


@data_app.command("show")
def data_show(
    curriculum: Path = typer.Argument(..., help="Curriculum TOML, MIDI folder, or a prepared folder."),
    stage: str | None = typer.Option(None, "--stage", help="List the pieces of this stage."),
    export_midi: Path | None = typer.Option(None, "--export-midi", help="Write example MIDI files here."),
    split: str | None = typer.Option(None, "--split", help="Split to list and export: train (default), val or test."),
    limit: int = typer.Option(3, "--limit", min=1, help="Pieces listed or exported per stage."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of difficulty and tokens per stage."),
) -> None:
    """What each stage holds, with example MIDI files to listen to."""
    from curricmusic.data.prepare import CACHE_WAIT_S, prepare
    from curricmusic.data.prepared import PreparedData
    from curricmusic.data.summary import (
        default_prepared_dir,
        export_examples,
        print_stage,
        print_summary,
    )

    if (curriculum / "manifest.json").is_file():
        data = PreparedData.open(curriculum)
    else:
        config, source = _load_curriculum_arg(curriculum)
        data = prepare(config, default_prepared_dir(config), workers=os.cpu_count() or 1, source=source, wait_s=CACHE_WAIT_S).data
    if stage is None:
        print_summary(data)
    else:
        print_stage(data, stage, limit, split)
    if export_midi is not None:
        written = export_examples(data, export_midi, limit, only_stage=stage, split=split)
        console.print(f"wrote {len(written)} MIDI files to [green]{export_midi}[/]")
    if plot is not None:
        from curricmusic.data.summary import plot_difficulty

        console.print(f"wrote [green]{plot_difficulty(data, plot)}[/]")


COMPILE_HELP = "Compile the training step (default: [train] compile, else auto: long runs on a machine that can)."


def _compile_flag(value: bool | None) -> None:
    """--compile/--no-compile: through the environment, so that launched processes see it too."""
    if value is not None:
        from curricmusic.training.compiled import COMPILE_ENV

        os.environ[COMPILE_ENV] = "1" if value else "0"


@app.command("train")
def train(
    experiment: Path = typer.Argument(..., help="Experiment TOML."),
    arm: str | None = typer.Option(None, "--arm", help="Arm to train (default: the first)."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Seed (default: the experiment's first)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default: runs/EXPERIMENT/ARM-seedN)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate: one of the arm's (needed when it sweeps several)."),
    match_run: Path | None = typer.Option(
        None, "--match-run", help="For an arm that matches an adaptive arm: that arm's finished run of the same seed "
        "(default: the folder ARM-seedN beside --out)."
    ),
    compile_step: bool | None = typer.Option(None, "--compile/--no-compile", help=COMPILE_HELP),
) -> None:
    """Train one arm and seed of an experiment."""
    from curricmusic.config import load_experiment
    from curricmusic.training.loop import train_run

    _compile_flag(compile_step)
    loaded = load_experiment(experiment)
    arm_name = arm or loaded.config.arms[0].name
    loaded.config.arm(arm_name)  # a clear error for an unknown arm
    run_seed = loaded.config.seeds[0] if seed is None else seed
    run_dir = out or Path("runs") / loaded.config.name / (f"{arm_name}-seed{run_seed}" if lr is None else f"{arm_name}-lr{lr:g}-seed{run_seed}")
    result = train_run(loaded, arm_name, run_seed, run_dir, lr=lr, resume=resume, matched_run=match_run)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    val = ", ".join(f"{stage} {sig(loss)}" for stage, loss in result.final_val.items())
    console.print(f"[green]{result.run_dir}[/]: {result.steps} steps; validation loss: {val}")


@app.command("generate")
def generate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `curricmusic train`, or an exported model folder."),
    n: int | None = typer.Option(None, "--n", help="Number of samples (default 4)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: RUN_DIR/samples; samples/NAME for a model folder)."),
    prompt: Path | None = typer.Option(None, "--prompt", help="Continue this MIDI file (its last bars)."),
    prompt_bars: int | None = typer.Option(
        None, "--prompt-bars", help="Bars of the prompt to continue from (default: the last 4, fewer if they do not fit)."
    ),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature (default 1.0)."),
    top_k: int | None = typer.Option(None, "--top-k", help="Keep the k most likely tokens (0: off; default 0)."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus sampling mass (1: off; default 0.95)."),
    min_p: float | None = typer.Option(None, "--min-p", help="Keep tokens with p >= min_p * max p (0: off; default 0)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the samples (default: the run's seed, as `curricmusic run` samples)."),
    max_bars: int | None = typer.Option(None, "--max-bars", help="Stop after this many bars (default 16)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Stop after this many tokens (default 2048)."),
    key: str | None = typer.Option(None, "--key", help="Keep pitches in this key, e.g. 'D minor' or 'Eb'."),
    grammar: bool | None = typer.Option(None, "--grammar/--no-grammar", help="The tokenizer's grammar mask (default on)."),
    copy_blocking: bool | None = typer.Option(
        None, "--copy-blocking/--no-copy-blocking", help="Block long copies of the training data (default on)."
    ),
    max_copy_notes: int | None = typer.Option(None, "--max-copy-notes", help="Longest span copied from training data (default 16)."),
    rerank: int | None = typer.Option(None, "--rerank", help="Draw K candidates per sample, keep the most novel-and-likely (default 1)."),
    novelty_weight: float | None = typer.Option(None, "--novelty-weight", help="Weight W of the novelty penalty in reranking (default 1)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Samples drawn at once (default 8)."),
    min_notes: int | None = typer.Option(
        None, "--min-notes", help="Draw a sample again (up to 4 times) while it has fewer new notes (default 0: never)."
    ),
    wav: bool | None = typer.Option(None, "--wav/--no-wav", help="Also render WAV audio with the General MIDI soundfont (default off)."),
    compile_step: bool | None = typer.Option(
        None, "--compile/--no-compile", help="Compile the decoding step (default auto: large sampling jobs on a machine that can)."
    ),
) -> None:
    """Sample MIDI (and WAV) from a trained run or an exported model folder.

    Every setting left out comes from the experiment's generate section recorded in the run (so
    `generate RUN_DIR` reproduces the samples `curricmusic run` drew; an exported folder keeps it
    in curricmusic.json), else from its default; manifest.json says which (settings_source: flag,
    experiment or default).
    """
    from curricmusic.config.run_settings import settings_for_run
    from curricmusic.generation.generate import generate_samples
    from curricmusic.generation.output import samples_line
    from curricmusic.generation.run import is_shared_folder, run_record

    flags = {
        "n": n, "seed": seed, "batch_size": batch_size, "max_bars": max_bars, "max_tokens": max_tokens,
        "temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p, "grammar": grammar,
        "key": key, "copy_blocking": copy_blocking, "max_copy_notes": max_copy_notes, "prompt": prompt,
        "prompt_bars": prompt_bars, "rerank": rerank, "novelty_weight": novelty_weight, "wav": wav,
        "min_notes": min_notes,
        "compile": compile_step,
    }  # fmt: skip
    settings_for_run({}, flags)  # a bad flag is one line naming it, before the run folder is read
    info, record = run_record(run_dir)
    settings, sources = settings_for_run(info, flags, source=record)
    default_out = Path("samples") / run_dir.resolve().name if is_shared_folder(run_dir) else run_dir / "samples"
    out_dir = out or default_out  # never inside a shared model folder (it may be a read-only download)
    manifest = generate_samples(run_dir, out_dir, settings, sources=sources)
    console.print(f"[green]{out_dir}[/]: {escape(samples_line(manifest))} (manifest.json)")


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="A run folder written by `curricmusic train` (or by `run`: OUT/runs/NAME)."),
    out: Path = typer.Option(..., "--out", help="The model folder to write (new, empty, or an earlier export)."),
    license: str | None = typer.Option(None, "--license", help="License of the weights for the model card, e.g. mit or cc-by-4.0."),
) -> None:
    """Write a trained run as a Hugging Face folder: GPT-NeoX weights, MidiTok tokenizer, model card.

    transformers' AutoModelForCausalLM.from_pretrained(OUT) loads it offline with no custom code,
    miditok's from_pretrained(OUT) its tokenizer; `curricmusic generate OUT` samples it and
    `init_from = "OUT"` in an experiment starts from it. See docs/guides/share-a-model.md.
    """
    from curricmusic.experiment.export import export_run

    written = export_run(run_dir, out, license=license)
    console.print(f"[green]{written}[/]: config.json, model.safetensors, tokenizer.json, generation_config.json, README.md")


@app.command("novelty")
def novelty(
    samples_dir: Path = typer.Argument(..., help="A folder of generated MIDI files."),
    against: Path = typer.Option(..., "--against", help="The run folder (or prepared folder) of the training data."),
    embedder: str | None = typer.Option(
        None, "--embedder", help="clap:<HF id | local dir | LAION .pt>, audio-features, or symbolic."
    ),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default: SAMPLES_DIR/novelty)."),
    bank_stage: list[str] | None = typer.Option(None, "--bank-stage", help="Training stages in the bank (repeatable; default all)."),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="Audio rendered per piece, in seconds (0: all of it; default 60)."
    ),
) -> None:
    """Score samples for closeness to the training data (CLAP + symbolic copy detection).

    Against a run folder, every setting left out comes from the experiment's novelty section
    recorded in the run (so the report's numbers are reproduced), else from its default;
    novelty.json says which (settings_source: flag, experiment or default).
    """
    from curricmusic.common.run_folder import RUN_FILE, is_run_folder, read_run
    from curricmusic.config.run_settings import novelty_settings_for_run
    from curricmusic.novelty.pipeline import score_novelty
    from curricmusic.reporting.embedder_note import embedder_note

    flags = {"embedder": embedder, "bank_stages": bank_stage or None, "max_seconds": max_seconds}
    run_info = read_run(against) if is_run_folder(against) else None  # a prepared folder records none
    settings, sources = novelty_settings_for_run(run_info, flags, source=str(against / RUN_FILE))
    out_dir = out or samples_dir / "novelty"
    report = score_novelty(samples_dir, against, out_dir, settings, sources=sources)
    summary = report["summary"]
    skipped = len(report.get("skipped") or [])
    embedder_text, _ = embedder_note([report["embedder"]])
    console.print(
        f"[green]{out_dir / 'novelty.html'}[/]: {summary['n']} samples scored"
        f"{f', {skipped} skipped (unreadable; reasons in novelty.json)' if skipped else ''}, {summary['n_flagged']} flagged "
        f"(copy rate {fmt(summary['copy_rate'], 2)}), median rho {sig(summary['rho_median'])}, "
        f"C_T {sig(summary['data_copying_C_T'])}, false flags on fresh music {fmt(summary.get('fresh_false_flag_rate'), 2)} "
        f"(distance flag {'on' if summary['rho_flag'] else 'off: copied spans only'}); {escape(embedder_text)}",
        soft_wrap=True,
    )


@app.command("compare")
def compare(
    reports: list[Path] = typer.Argument(..., help="novelty.json files (or folders holding one)."),
    out: Path = typer.Option(Path("compare"), "--out", help="Folder for compare.html and compare.json."),
) -> None:
    """Put the novelty figures of several sample sets side by side."""
    from curricmusic.novelty.compare import compare_reports

    table = compare_reports(reports, out)
    console.print(table)
    console.print(f"[green]{out / 'compare.html'}[/]")


@app.command("run")
def run(
    experiment: Path = typer.Argument(..., help="Experiment TOML."),
    out: Path | None = typer.Option(None, "--out", help="Experiment folder (default: runs/EXPERIMENT)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted experiment in --out."),
    launcher: str = typer.Option("local", "--launcher", help="local, accelerate, slurm or slurm-local."),
    compile_step: bool | None = typer.Option(None, "--compile/--no-compile", help=COMPILE_HELP),
    jobs: int = typer.Option(
        1, "--jobs", min=1, max=256, help="Cells trained at once on this machine (local launcher), each in its own process with its share of the cores."
    ),
) -> None:
    """Run every arm x seed of an experiment, then write results.json and the reports."""
    from curricmusic.config import load_experiment
    from curricmusic.experiment.runner import run_experiment

    _compile_flag(compile_step)
    loaded = load_experiment(experiment)
    out_dir = out or Path("runs") / loaded.config.name
    results = run_experiment(loaded, out_dir, resume=resume, launcher=launcher, jobs=jobs)
    _print_opening(results)
    console.print(f"[green]{out_dir / 'report.html'}[/] (also results.json, report.md)")
    failed = [r for r in results["runs"] if r.get("status") != "done"]
    adaptation = results.get("adaptation") or {"runs": [], "shots": []}
    failed += [  # a from-scratch seed that failed (its arms' adaptation failures fail their cells)
        {"arm": r["model"], "seed": r["seed"], "error": r["error"]}
        for r in adaptation["runs"]
        if r["model"] == "scratch" and r["status"] == "failed" and r["shots"] == adaptation["shots"][0]
    ]
    if failed:
        for row in failed:
            reason = row.get("error") or row.get("status") or "did not finish"
            line = escape(f"{row['arm']} seed {row['seed']}: {reason}")
            err_console.print(f"[bold red]failed:[/] {line}", highlight=False, soft_wrap=True)
        err_console.print(
            f"[bold red]error:[/] {len(failed)} of {len(results['runs'])} runs failed (see above and "
            f"{escape(str(out_dir / 'report.md'))}); `curricmusic run --resume` retries them",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _print_opening(results: dict) -> None:
    """The report's opening lines (the answer), as plain text."""
    from curricmusic.reporting.answer import opening_lines

    text = "\n".join(opening_lines(results)).replace("**", "").replace("`", "")
    console.print(escape(text), soft_wrap=True, highlight=False)


@app.command("report")
def report(
    experiment_dir: Path = typer.Argument(..., help="An experiment folder written by `run`."),
) -> None:
    """Write results.json and the reports of an experiment folder again from its runs.

    Trains nothing: use it after `curricmusic probe`, or after upgrading curricmusic. The folder's
    experiment.json says how its runs were trained; unfinished runs are reported as they stand.
    """
    from curricmusic.experiment.recorded import rebuild_reports

    results = rebuild_reports(experiment_dir)
    _print_opening(results)
    done = sum(r.get("status") == "done" for r in results["runs"])
    console.print(f"[green]{experiment_dir / 'report.html'}[/] (also results.json, report.md): {done} of {len(results['runs'])} runs finished")


@app.command("probe")
def probe(
    run_dir: Path = typer.Argument(..., help="An experiment folder (from `run`) or one run folder (from `train`)."),
    layers: bool = typer.Option(False, "--layers", help="Also probe every layer (embedding, each block)."),
    force: bool = typer.Option(False, "--force", help="Probe again even where probe.json exists."),
) -> None:
    """Linear probes of key, mode and meter of held-out pieces: trained model against its initial weights.

    Writes probe.json into each finished run folder that lacks one and prints, per arm and task,
    the accuracy of the trained model, of the seed's untrained weights (the control) and their
    difference, beside chance and a probe on the bag of input tokens; then, for key and mode, the
    same from the model's predicted pitch classes, beside the pitches that actually came next.
    """
    from rich.table import Table

    from curricmusic.experiment.probe_results import probe_folder, probe_rows
    from curricmusic.reporting.probe_section import EXPECTATION_NOTE, PROBE_NOTE, interval_text
    from curricmusic.reporting.style import fmt

    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such folder")
    summaries = probe_folder(run_dir, layers=layers, force=force)
    table = Table(title=f"Linear probes: {run_dir}")
    for column in ("arm", "task", "seeds", "classes", "chance", "bag of tokens", "initial weights", "trained", "trained - initial"):
        table.add_column(column, justify="left" if column in ("arm", "task") else "right")
    for row in probe_rows(summaries):
        table.add_row(
            row["arm"], row["task"], str(row["n"]), str(row["n_classes"]), fmt(row["chance"]), fmt(row["bag_of_tokens"]),
            interval_text(row["initial"]), interval_text(row["trained"]), interval_text(row["gain"]),
        )  # fmt: skip
    console.print(table)
    expected = Table(title="Key and mode from the predicted pitch classes (what the model expects)")
    columns = ("arm", "task", "seeds", "classes", "chance", "heard pitches", "key-blind neighbour", "initial weights", "trained", "trained - initial")  # fmt: skip
    for column in columns:
        expected.add_column(column, justify="left" if column in ("arm", "task") else "right")
    for row in probe_rows(summaries, "expectation"):
        expected.add_row(
            row["arm"], row["task"], str(row["n"]), str(row["n_classes"]), fmt(row["chance"]), fmt(row["heard"]),
            fmt(row["neighbour"]), interval_text(row["initial"]), interval_text(row["trained"]), interval_text(row["gain"]),
        )  # fmt: skip
    if expected.row_count:
        console.print(expected)
    if layers:
        for row in probe_rows(summaries):
            for model, by_layer in row.get("layers", {}).items():
                text = ", ".join(f"{layer} {fmt(value)}" for layer, value in by_layer.items())
                console.print(f"{row['arm']} {row['task']} {model}: {text}")
    pieces = next(iter(summaries.values())).get("pieces", {})
    console.print(f"{pieces.get('n', '-')} held-out pieces, first {pieces.get('seq_len', '-')} tokens each. {PROBE_NOTE}")
    if expected.row_count:
        console.print(EXPECTATION_NOTE)
    for row in probe_rows(summaries, "expectation"):
        mass = row.get("scale_mass")
        if mass:
            console.print(
                f"{row['arm']}: share of the predicted next pitch on the key's diatonic classes (uniform 0.583): "
                f"heard {fmt(mass['heard'])}, key-blind neighbour {fmt(mass['neighbour'])}, "
                f"initial {interval_text(mass['initial'])}, trained {interval_text(mass['trained'])}"
            )


class _Signals:
    """The signal that interrupted the command (SIGINT or SIGTERM), if any."""

    received: int | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM become KeyboardInterrupt, so that every ``finally`` runs (locks,
    temporary files); the command line then says so in one line (typer itself exits silently)."""
    _Signals.received = signum
    raise KeyboardInterrupt


_RESUMABLE = ("train", "run")  # commands whose --resume continues where an interruption left off


def _interrupted(args: list[str]) -> None:
    """One line, then exit 130 (SIGINT) or 143 (SIGTERM)."""
    command = next((arg for arg in args if not arg.startswith("-")), "")
    line = "interrupted; `--resume` continues" if command in _RESUMABLE else "interrupted"
    try:
        err_console.print(f"[yellow]{line}[/]", highlight=False, soft_wrap=True)
    except Exception:  # noqa: BLE001 - the last resort must not fail
        os.write(2, f"{line}\n".encode())
    sys.exit(143 if _Signals.received == signal.SIGTERM else 130)


def _print_error(line: str) -> None:
    """The one error line, on stderr; plain text when rich itself cannot print (no memory left)."""
    try:
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    except Exception:  # noqa: BLE001 - the last resort must not fail
        os.write(2, f"error: {line}\n".encode("utf-8", "replace"))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: every failure becomes one line (see the module doc)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:  # accepted anywhere on the line, not only before the command
        args = [arg for arg in args if arg != "--debug"]
        os.environ[DEBUG_ENV] = "1"
    redirect_tool_caches()  # nothing written outside --out and the cache
    _Signals.received = None
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {number: signal.signal(number, _on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        app(args=args, prog_name="curricmusic")
    except SystemExit:
        if _Signals.received is not None:  # typer turned the interruption into a silent exit 130
            _interrupted(args)
        raise
    except KeyboardInterrupt:
        _interrupted(args)
    except Exception as exc:  # noqa: BLE001 - the one top-level handler
        if debug_enabled():
            traceback.print_exc()
        status, line = error_line(exc)
        if out_of_memory(exc):  # free what the failed frames hold before printing anything
            exc.__traceback__ = None
            del exc
            gc.collect()
        _print_error(line)
        sys.exit(status)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
