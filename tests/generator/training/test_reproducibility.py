"""The same seed and the same commands give byte-identical weights and certificates."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from compact_proofs.generator.cli import app

runner = CliRunner()
STRATEGIES = ["brute-force", "cubic", "subcubic/max_diff_exact/per_output+chords/max_diff_subproduct"]


def produce(folder) -> dict[str, bytes]:
    model = folder / "model.npz"
    result = runner.invoke(app, ["train", "--k", "3", "--d-vocab", "8", "--steps", "80", "--seed", "7", "-o", str(model), "--no-progress"])
    assert result.exit_code == 0, result.output
    out = {}
    for strategy in STRATEGIES:
        cert = folder / (strategy.replace("/", "_") + ".msgpack")
        result = runner.invoke(app, ["prove", str(model), "-s", strategy, "-o", str(cert), "--no-progress"])
        assert result.exit_code == 0, result.output
        out[strategy] = cert.read_bytes()
    with np.load(model) as data:
        out["weights"] = b"".join(data[k].tobytes() for k in sorted(data.files))
    return out


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    return produce(tmp_path_factory.mktemp("first")), produce(tmp_path_factory.mktemp("second"))


@pytest.mark.parametrize("strategy", STRATEGIES + ["weights"])
def test_byte_identical(twice, strategy):
    first, second = twice
    assert first[strategy] == second[strategy]
