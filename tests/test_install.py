"""The checker alone installs without torch, dask or matplotlib, under the compact_proofs package
(no generic top-level modules), and checks the committed certificates from a fresh venv."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)


def test_a_checker_only_install_checks_the_committed_certificates(tmp_path):
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    python, bindir = venv / "bin" / "python", venv / "bin"
    install = run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", ROOT)
    assert install.returncode == 0, install.stderr[-2000:]
    for absent in ("torch", "dask", "matplotlib", "typer"):
        assert run(python, "-c", f"import {absent}").returncode != 0, f"{absent} was installed"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    assert (site / "compact_proofs" / "checker").is_dir()
    assert not (site / "checker").exists() and not (site / "generator").exists()
    certificates = sorted((ROOT / "certificates").glob("*.msgpack"))
    assert certificates
    checked = run(bindir / "compact-proofs-check", "--no-progress", *certificates, cwd=tmp_path)
    assert checked.returncode == 0 and checked.stdout.count("ACCEPTED") == len(certificates), checked.stdout + checked.stderr
    generator = run(bindir / "compact-proofs", "--help", cwd=tmp_path)
    assert generator.returncode == 3 and "pip install 'compact-proofs[generator]'" in generator.stderr
    assert "Traceback" not in generator.stderr
    assert sysconfig.get_paths()["purelib"] != str(site)  # (the test's own environment is untouched)
