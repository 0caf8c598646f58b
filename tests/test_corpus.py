"""The must-reject corpus (tests/corpus): every file gives the same documented outcome on both
checker paths, through the command line, with one verdict line and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compact_proofs.checker.cli import EXIT_OF, main

CORPUS = Path(__file__).resolve().parent / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


def test_the_corpus_is_complete():
    assert sorted(p.stem for p in CORPUS.glob("*.msgpack")) == sorted(EXPECTED)


@pytest.mark.parametrize("path", ["fast", "pure"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_both_paths_refuse_every_corpus_file(name, path, capsys):
    outcome = EXPECTED[name][path]
    options = ["--no-progress"] + (["--pure"] if path == "pure" else [])
    code = main([str(CORPUS / f"{name}.msgpack"), *options])
    out, err = capsys.readouterr()
    assert outcome != "accepted"
    assert code == EXIT_OF[outcome], (out, EXPECTED[name]["why"])
    assert out.startswith(outcome.upper()) and out.count("\n") == 1 and "Traceback" not in out + err
