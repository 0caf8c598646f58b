"""compact-proofs: machine-checked lower bounds on a transformer's accuracy over all inputs.

- compact_proofs.checker: the small trusted checker (numpy, python-flint, msgpack; no torch);
  `compact-proofs-check`, or compact_proofs.checker.verify.check_bytes(raw) from Python.
- compact_proofs.generator: the untrusted side (training, proof search, sweeps, reports; needs
  the `generator` extra); `compact-proofs`, or compact_proofs.generator.proving.prover.prove(state_dict, strategy).
"""

__version__ = "0.1.0"
