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
