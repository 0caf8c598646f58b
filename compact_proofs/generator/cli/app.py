"""The `compact-proofs` typer app: its global options, and what every command shares (notes and
errors on stderr, progress bars, output paths checked before any work, weights loaded with a
one-line error)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from compact_proofs.generator import weights_io

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train Max-of-K transformers, prove lower bounds on their accuracy over all inputs, and check the proofs.",
)
err = Console(stderr=True)
EXIT_REJECTED, EXIT_USAGE, EXIT_INVALID = 1, 2, 3  # the checker's exit codes (checker/cli.py), for every command

_display_type = getattr(typer.core.TyperOption, "display_type_rich", None)  # where typer has it, it writes `<bool>` on flags


def _no_flag_type(self, ctx):
    """--help shows a flag without a value type (typer would write `<bool>`: a flag takes no value)."""
    return None if self.is_flag else _display_type(self, ctx)


if _display_type is not None:
    typer.core.TyperOption.display_type_rich = _no_flag_type


class Command(typer.core.TyperCommand):
    """A command whose usage line leaves out hidden arguments (`--k 4 5 10 20` keeps the values
    after the first in one hidden argument; the usage shows `--k`, not the argument)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if not getattr(param, "hidden", False):
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


def _version(value: bool) -> None:
    if value:
        from compact_proofs import __version__

        print(f"compact-proofs {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print the version and exit"),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars or notes on stderr (errors and results only)"),
             verbose: bool = typer.Option(False, "--verbose", "-v", help="more detail on stderr (the checker's notes)")) -> None:
    """Train Max-of-K transformers, prove lower bounds on their accuracy over all inputs, and check the proofs.

    Exit codes (every command): 0 success, 1 a claim not established (or a proof the checker did not
    accept), 2 usage error, 3 an unreadable or invalid input file, 4 a resource or time limit,
    5 not supported here, 130 interrupted."""
    VERBOSITY["level"] = 0 if quiet else 2 if verbose else 1


VERBOSITY = {"level": 1}  # 0 quiet, 1 default, 2 verbose


def info(message: str, level: int = 1) -> None:
    """A note on stderr, shown at this verbosity or above (never a result: those go to stdout)."""
    if VERBOSITY["level"] >= level:
        err.print(message, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_INVALID) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(enabled: bool | None = True, stages_when_piped: bool = False) -> Iterator:
    """Progress on stderr; yields a (stage, done, total) callback. A rich bar when stderr is a
    terminal; otherwise nothing, or with `stages_when_piped` (or enabled=True given explicitly as
    `--progress`: pass stages_when_piped=enabled is True) one line as each stage starts and ends.
    Nothing with -q or `--no-progress` (enabled False)."""
    if enabled is False or VERBOSITY["level"] == 0:
        yield lambda stage, done, total: None
        return
    if not err.is_terminal:
        if not stages_when_piped:
            yield lambda stage, done, total: None
            return
        seen: dict[str, bool] = {}

        def line(stage: str, done: int, total: int) -> None:
            if stage not in seen:
                seen[stage] = False
                err.print(f"{stage} ...", highlight=False, markup=False, soft_wrap=True)
            if total and done >= total and not seen[stage]:
                seen[stage] = True
                err.print(f"{stage}: done" + (f" ({done}/{total})" if total > 1 else ""), highlight=False, markup=False, soft_wrap=True)

        yield line
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(escape(stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def load_weights(path: Path) -> dict:
    return load_model(path)[0]


def load_model(path: Path) -> tuple[dict, dict | None]:
    """(weights, what the file says about the model or None), or a one-line error (exit 3)."""
    try:
        return weights_io.load_with_about(path)
    except weights_io.WeightsError as exc:
        fail(str(exc))


def output_path(path: str | Path, inputs: tuple[Path, ...] = (), make_dirs: bool = False, suffixes: tuple[str, ...] = (),
                force: bool = False) -> Path:
    """An output file checked before any work: of an accepted type, not a directory (nor a name
    ending in a separator), not a link, device or pipe, not one of the inputs, not an existing
    file unless `force` (--force), in a directory that exists (or is made, with --make-dirs) and
    accepts a new file."""
    import tempfile

    if str(path).endswith(os.sep) or (os.altsep and str(path).endswith(os.altsep)):
        fail(f"{path} names a directory; give a file name", EXIT_USAGE)
    path = Path(path)
    if path.is_symlink():
        fail(f"{path} is a symbolic link; it will not be replaced (give the file's own path)", EXIT_USAGE)
    if path.is_dir():
        fail(f"{path} is a directory; give a file name", EXIT_USAGE)
    if path.exists() and not path.is_file():
        fail(f"{path} exists and is not a regular file (a device, a pipe or a socket); it will not be replaced", EXIT_USAGE)
    if suffixes and path.suffix.lower() not in suffixes:
        fail(f"unsupported output type {path.suffix or '(none)'} for {path}; use one of {', '.join(suffixes)}", EXIT_USAGE)
    if any(path.exists() and i.exists() and path.resolve() == i.resolve() for i in inputs):
        fail(f"{path} is an input of this command; it will not be overwritten", EXIT_USAGE)
    if path.exists() and not force:
        fail(f"{path} exists; pass --force to replace it", EXIT_USAGE)
    folder = path.parent
    if not folder.exists():
        if not make_dirs:
            fail(f"the directory {folder} does not exist (create it, or pass --make-dirs)", EXIT_USAGE)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create {folder}: {exc.strerror or exc}", EXIT_USAGE)
    if not folder.is_dir():
        fail(f"{folder} is not a directory", EXIT_USAGE)
    try:  # the same kind of file the atomic write will create
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        fail(f"cannot create a file in {folder}: {exc.strerror or exc}", EXIT_USAGE)
    return path


def reachable(scheduler: str | None) -> None:
    """A Dask scheduler address that answers (checked before any work), or none."""
    if scheduler is None:
        return
    try:
        from distributed import Client

        with Client(scheduler, timeout="10s"):
            pass
    except (OSError, TimeoutError, ValueError) as exc:
        fail(f"cannot reach the Dask scheduler at {scheduler}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", EXIT_USAGE)


def writable_directory(path: Path) -> Path:
    """A directory that exists (or is created) and accepts new files, checked before any work."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        fail(f"cannot write to the directory {path}: {exc.strerror or exc}", EXIT_USAGE)
    return path


MAKE_DIRS = typer.Option(False, "--make-dirs", help="create the output's directory if it does not exist")
FORCE = typer.Option(False, "--force", help="replace the output file if it exists (never an input)")


class _ClosedPipeGuard:
    """stdout that, once its reader has gone (`... | head -1`), discards the rest of the output, so
    the command ends with its own exit code (click would exit 1, which means a refuted claim)."""

    def __init__(self, stream):
        self._stream = stream

    def _divert(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._divert()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._divert()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
