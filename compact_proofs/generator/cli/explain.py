"""`explain`: where a certificate's bound is lost (the slack ledger; diagnostics, not proofs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from compact_proofs.generator.cli.app import FORCE, app, fail, info, output_path, progress_bar


@app.command()
def explain(
    certificate: Path = typer.Argument(..., help="a certificate file (.msgpack)"),
    as_json: bool = typer.Option(False, "--json", help="print the whole ledger as JSON (every cell with lost inputs)"),
    png: str = typer.Option(None, "--png", help="also draw not-certified and wrong inputs by max token to this PNG"),
    force: bool = FORCE,
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="show progress on stderr: a bar on a terminal, else a line per stage",
                                            show_default="a bar on a terminal, a line per stage otherwise"),
) -> None:
    """Where a certificate's bound is lost: not-certified inputs by copies of the max and by max
    token against the wrong inputs there, and (subcubic) each approximation step's cost.
    Diagnostics, not proofs: exit 0 when the checker accepts the certificate. A format-v2
    certificate (another task, two layers, several heads) gets the checker's count only."""
    from compact_proofs.checker.certificate import MAX_FILE_BYTES
    from compact_proofs.checker.cli import EXIT_OF
    from compact_proofs.checker.errors import CheckError
    from compact_proofs.generator.studies import ledger

    out_png = output_path(png, inputs=(certificate,), suffixes=(".png",), force=force) if png else None
    try:
        if certificate.stat().st_size > MAX_FILE_BYTES:
            fail(f"{certificate}: larger than {MAX_FILE_BYTES} bytes, the certificate format's limit")
        with open(certificate, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)  # never more than the format allows (a device may not say its size)
    except OSError as exc:
        fail(f"{certificate}: {exc.strerror or exc}")
    try:
        with progress_bar(progress, stages_when_piped=progress is not False) as update:
            report = ledger.explain(raw, update)
    except CheckError as exc:
        fail(f"{certificate}: {exc}")
    if not report["accepted"]:
        fail(f"{certificate}: the checker does not accept this certificate; there is no bound to explain", EXIT_OF["rejected"])
    if as_json:
        print(json.dumps(report, indent=1, allow_nan=False))
    elif "induction" in report:
        _print_induction(report)
    elif report["format"] != 1:
        _print_v2(report)
    else:
        _print_ledger(report)
        _print_exact_steps(report["exact_steps"])
    if out_png is not None and report["format"] != 1:
        info(f"no figure written to {out_png}: it draws the format-v1 breakdowns, which a format-v2 certificate has none of")
    elif out_png is not None:
        from compact_proofs.generator.studies.report import save_figure

        save_figure(ledger.figure(report), out_png)
        info(f"wrote {out_png}")


def _print_v2(report: dict) -> None:
    """A format-v2 certificate: the checker's count over the task's domain, and why no breakdown."""
    certified, total = int(report["certified"]), int(report["total"])
    head = f"{report['strategy']}, task {report['task']}: bound {report['bound']} ({report['label']})"
    if total == 0:
        print(f"{head}\nthe task's domain is empty: there are no inputs to lose")
        return
    print(f"{head}\n{certified} of the task's {total} inputs certified, {total - certified} not; the ledger's breakdowns "
          "(by max token and copies of the max, the cost of each step) are for format-v1 Max-of-K certificates")


def _print_induction(report: dict) -> None:
    """A compact induction certificate: the cells by the position of the query token's occurrence,
    the largest cells lost, each relaxation made exact, and the cell structure's ceiling."""
    ind = report["induction"]
    total = int(ind["total"])
    share = lambda n: f"{int(n) / total:.4f}" if total else "-"  # noqa: E731
    print(f"{report['strategy']}, task induction: bound {report['bound']} = {share(ind['certified'])} ({report['label']})")
    print(f"inputs whose last token occurs once before it: {share(ind['single_occurrence'])} of the domain")
    print("by the position p of the last token's most recent earlier occurrence:")
    print("     p   inputs   certified   cells certified")
    for row in ind["by_p"]:
        print(f"  {row['p']:4d}   {share(row['inputs'])}   {share(row['certified'])}      {row['certified_cells']}/{row['cells']}")
    if ind["largest_lost_cells"]:
        print("largest cells not certified (size; cell):", ", ".join(f"{c['size']}: {c['cell']}" for c in ind["largest_lost_cells"][:5]))
    steps = ind["steps"]
    if steps["available"]:
        print("each relaxation made exact (diagnostics: the bound again with that step exact):")
        for name, n in steps["certified"].items():
            print(f"  {name:22s} {share(n)}  (+{(int(n) - int(ind['certified'])) / total:.4f})" if total else f"  {name}: -")
    else:
        print(f"steps: {steps['reason']}")
    ceiling = ind["ceiling"]
    if ceiling["available"]:
        line = f"float64 accuracy over the domain {share(ceiling['float64_correct'])}"
        if ceiling["in_all_correct_cells"] is not None:
            line += f"; inputs in cells whose every sequence is correct (the cells' ceiling) {share(ceiling['in_all_correct_cells'])}"
        print(line)
    else:
        print(f"ceiling: {ceiling['reason']}")


def _print_ledger(report: dict) -> None:
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    task = "" if report.get("task", "max") == "max" else f", task {report['task']}"
    console.print(f"{report['strategy']}{task}: bound {report['bound']} ({report['label']})")
    lost = report["where_lost"]
    if not lost["available"]:
        console.print(f"where the inputs are lost: {lost['reason']}")
    else:
        wrong = "-" if lost["wrong"] is None else f"{lost['wrong']}"
        console.print(f"{lost['not_certified']} of {lost['total']} inputs not certified; wrong: {wrong} ({lost['wrong_method']})")
        for title, rows, key in (("by copies of the max", lost["by_copies"], "copies"),
                                 ("by max token (the 8 losing most)", lost["by_max"], "max token")):
            table = Table(title=title)
            for column in (key, "inputs", "not certified", "wrong"):
                table.add_column(column, justify="right")
            ranked = [(i, r) for i, r in enumerate(rows) if r["inputs"]]
            if key == "max token":
                ranked = sorted(ranked, key=lambda ir: -ir[1]["not_certified"])[:8]
            for i, r in ranked:
                table.add_row(str(i), str(r["inputs"]), str(r["not_certified"]), "-" if r["wrong"] is None else str(r["wrong"]))
            console.print(table)
    steps = report["step_costs"]
    if not steps["available"]:
        console.print(f"step costs: {steps['reason']}")
        return
    reference = "unknown" if steps["reference_bound"] is None else f"{steps['reference_bound']:.4f}, gap {steps['gap']:.4f}"
    if not steps["steps"]:
        console.print(f"no swappable step; the reference, {steps['reference']}: {reference} (the per-case pessimisation: "
                      "worst mixtures of the non-max tokens, worst arrangements of the copies)")
        return
    table = Table(title=f"each step swapped for its tightest handling ({steps['reference']}: {reference})")
    for column in ("step", "handling", "tightest", "bound", "gain"):
        table.add_column(column)
    for s in steps["steps"]:
        table.add_row(s["step"], s["from"], s["to"], f"{s['bound']:.4f}", f"{s['gain']:+.4f}")
    console.print(table)
    cover = steps["gains_cover"]
    if cover is not None:
        console.print(f"the single-step gains cover {cover:.0%} of the gap to the {steps['reference']}"
                      + ("; the rest is in what every variant of this family shares" if cover < 0.9 else ""))


def _print_exact_steps(exact: dict) -> None:
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    if not exact["available"]:
        console.print(f"exact steps: {exact['reason']}")
        return
    table = Table(title=f"each step replaced by its exact counterpart ({exact['method']})")
    for column in ("step", "exact counterpart", "bound", "gain"):
        table.add_column(column)
    for s in exact["steps"]:
        table.add_row(s["step"], s["to"], f"{s['bound']:.4f}", f"{s['gain']:+.4f}")
    console.print(table)
    console.print(f"ceiling of the cell structure (every cell at the smallest gap where all its inputs are correct): "
                  f"{exact['ceiling']:.4f}")
