"""docs/results regenerates from its own CSVs (the sweep's results directory is not in the repo),
its README says what the tables say, and the figures show every family readably: brute force
does not squeeze the other points, every bar and legend entry is its own family's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from compact_proofs.generator.studies import report

ROOT = Path(__file__).resolve().parents[3]
PUBLISHED = ROOT / "docs" / "results"


@pytest.fixture(scope="module")
def published():
    rows, estimates = report.load_published(PUBLISHED)
    return rows, estimates, report.headline(rows, estimates)


def test_the_tables_regenerate_byte_for_byte_from_the_published_csvs(published, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "figures", lambda rows, table, out: [])  # the figures are checked below
    report.write_report(PUBLISHED, tmp_path)
    for name in ("headline.csv", "headline.md", "variants.csv", "variants.md", "ledger_per_seed.csv", "ledger_summary.md"):
        assert (tmp_path / name).read_bytes() == (PUBLISHED / name).read_bytes(), name
    assert not (tmp_path / "rows.csv.gz").exists()  # the input is not written again


def _readme_headline() -> dict[int, list[str]]:
    text = (PUBLISHED / "README.md").read_text()
    section = text.split("## Headline")[1].split("\n## ")[0]
    return {int(m[1]): [c.strip() for c in m[2].split("|")] for m in re.finditer(r"^\| (\d+) \|(.*)\|$", section, re.M)}


@pytest.mark.parametrize("readme", [PUBLISHED / "README.md", ROOT / "README.md"])
def test_the_readmes_headline_tables_are_the_published_means(published, readme):
    _, _, table = published
    mean = {(r["K"], r["family"]): f"{r['bound_mean']:.4f}" for r in table}
    text = readme.read_text()
    section = text.split("## Headline")[1] if "## Headline" in text else text.split("## Results")[1]
    rows = {int(m[1]): [c.strip() for c in m[2].split("|")] for m in re.finditer(r"^\| (\d+) \|(.*)\|$", section.split("\n## ")[0], re.M)}
    assert set(rows) == {4, 5, 10, 20}
    families = (report.BRUTE, report.CUBIC, report.CUBIC_PAPER, report.BEST, report.BEST_PAPER)
    for k, cells in rows.items():
        for family, cell in zip(families, cells):
            assert cell == mean.get((k, family), "-"), (readme.name, k, family, cell)


@pytest.fixture(scope="module")
def figures(published):
    rows, _, table = published
    return report.build_figures(rows, table)


@pytest.mark.parametrize("name", ["bound_vs_flops.png", "bound_vs_unexplained_dimension.png"])
def test_brute_force_is_marked_at_the_edge_not_plotted_far_right(published, figures, name):
    rows = published[0]
    key = "flops" if "flops" in name else "unexplained_dimension"
    fig = figures[name]
    k4 = fig.axes[0]
    assert k4.get_title() == "K = 4"
    values = [r[key] for r in rows if r["k"] == 4 and r["strategy"] != "brute-force" and r[key] > 0]
    others = max(values)
    brute = min(r[key] for r in rows if r["k"] == 4 and r["strategy"] == "brute-force")
    low, high = k4.get_xlim()
    assert high < 10 * others < brute  # the axis spans the other points, not brute force's
    span = np.log(others / min(values)) / np.log(high / low)
    assert span > 0.5  # the other points fill most of the axis (with brute force on it: a third or less, at the left)
    assert any("brute force" in t.get_text() and f"{brute:.1e}"[:3] in t.get_text() for t in k4.texts)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(set(labels)) and not any(label.count("subcubic") > 1 for label in labels)


def test_every_bar_is_its_own_familys_colour(figures):
    for ax in figures["best_bound_per_class.png"].axes:
        colours = [tuple(bar.get_facecolor()) for bar in ax.patches]
        assert len(colours) == len(set(colours)), ax.get_title()
