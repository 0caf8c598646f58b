"""Every certificate in certificates/ is accepted by the standalone checker and matches the schema."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import msgpack
import pytest

ROOT = Path(__file__).resolve().parents[1]
CERTIFICATES = sorted((ROOT / "certificates").glob("*.msgpack"))
SCHEMA = json.loads((ROOT / "schema" / "certificate-v1.schema.json").read_text())


def as_json(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def test_there_are_committed_certificates():
    assert CERTIFICATES


@pytest.mark.parametrize("path", CERTIFICATES, ids=lambda p: p.name)
def test_standalone_checker_accepts(path):
    run = subprocess.run([sys.executable, "-m", "compact_proofs.checker", "--json", str(path)], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout + run.stderr
    (verdict,) = json.loads(run.stdout)["results"]
    assert verdict["accepted"] and int(verdict["verified_correct"]) >= int(verdict["claimed_correct"])


@pytest.mark.parametrize("path", CERTIFICATES, ids=lambda p: p.name)
def test_matches_the_machine_readable_schema(path):
    document = msgpack.unpackb(path.read_bytes(), raw=False)
    jsonschema.validate(as_json(document), SCHEMA)


INDUCTION = sorted((ROOT / "docs" / "results" / "induction" / "certificates").rglob("*.msgpack"))
SCHEMA_V2 = json.loads((ROOT / "schema" / "certificate-v2.schema.json").read_text())


def test_format_v2_certificates_match_their_schema(tmp_path):
    """The committed induction certificates (checked in `make bench`, minutes each) and a fresh
    two-layer certificate match schema/certificate-v2.schema.json; a v1 certificate does not."""
    import numpy as np

    from compact_proofs.generator.proving.prover import prove
    from tests.models import build_v2

    weights = build_v2("gaussian", 1, V=3, N=3, D=2, E=2, H=2, L=2, scale=1.0, biases=True, dtype=np.float32)
    fresh = prove(weights, "brute-force", task="induction").raw
    for raw in [fresh] + [p.read_bytes() for p in INDUCTION]:
        jsonschema.validate(as_json(msgpack.unpackb(raw, raw=False)), SCHEMA_V2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(as_json(msgpack.unpackb(CERTIFICATES[0].read_bytes(), raw=False)), SCHEMA_V2)


RESULTS_V3 = sorted(p for task in ("modular-addition", "sort") for p in (ROOT / "docs" / "results" / task).rglob("*.msgpack"))
SCHEMA_V3 = json.loads((ROOT / "schema" / "certificate-v3.schema.json").read_text())


def test_format_v3_certificates_match_their_schema():
    """The committed version-3 certificates (docs/results/modular-addition, sort; checked in full
    by `make bench`) and fresh ones (MLP and LayerNorm; a task given as data) match
    schema/certificate-v3.schema.json; v1 and v2 certificates do not."""
    import numpy as np

    from compact_proofs.checker.v3 import data
    from compact_proofs.generator.proving.prover import prove
    from tests.models_v3 import build_v3

    weights, arch = build_v3("gaussian", 1, V=4, O=3, N=3, D=4, E=2, H=2, M=4, L=2, act="gelu", norm="LN")
    fresh = [prove(weights, "brute-force", task="modular-addition", architecture=arch).raw,
             prove(weights, "brute-force", task="data", architecture=arch,
                   task_file=data.write(np.array([[1, 2, 3], [0, 0, 3]]), np.array([[1], [2]]))).raw]
    for raw in fresh + [p.read_bytes() for p in RESULTS_V3]:
        jsonschema.validate(as_json(msgpack.unpackb(raw, raw=False)), SCHEMA_V3)
    for raw in [CERTIFICATES[0].read_bytes()] + [p.read_bytes() for p in INDUCTION[:1]]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(as_json(msgpack.unpackb(raw, raw=False)), SCHEMA_V3)
