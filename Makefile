# Everything installs into .venv from this repository's own files; a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORK := out/demo

.PHONY: demo test bench fuzz mutation check-certificates clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[generator,dev]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(WORK)
	$(VENV)/bin/compact-proofs train --k 4 --seed 123 -o $(WORK)/max4-seed123.npz --force
	$(VENV)/bin/compact-proofs prove $(WORK)/max4-seed123.npz --strategy brute-force -o $(WORK)/max4-seed123.brute-force.msgpack --force
	$(VENV)/bin/compact-proofs-check $(WORK)/max4-seed123.brute-force.msgpack

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

check-certificates: $(STAMP)
	$(VENV)/bin/compact-proofs-check --no-progress certificates/*.msgpack

bench: $(STAMP)
	$(PY) -m benchmarks.run

mutation: $(STAMP)
	$(PY) -m pip install --quiet mutmut==3.8.1
	$(VENV)/bin/mutmut run --max-children 2 || true
	$(VENV)/bin/mutmut results

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/fuzz -p no:cacheprovider -W ignore::RuntimeWarning --hypothesis-show-statistics

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
