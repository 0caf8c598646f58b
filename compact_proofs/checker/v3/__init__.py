"""Certificate format v3 (SEMANTICS.md, version 3): transformers of up to four blocks, each
attention and an optional MLP, with optional LayerNorm, and the tasks of tasks.py here.

- architecture.py: the certificate's `architecture` map and the weights, validated, as data
  (a Model3 holds its blocks; each block names its components);
- numerics.py: the sound float64 operations version 3 adds (LayerNorm's mean, variance, square
  root and division; relu, gelu with erf, gelu_new with tanh), in balls (ball.py);
- forward.py: every input's logits at its readout positions, enclosed in balls in one pass over
  the distinct prefixes of a chunk of inputs; and the same forward pass in arb for inputs left open;
- tasks.py: version 3's tasks (exact domains, labels at one or more readout positions), the task
  given as data included (data.py: its file format).
The brute force itself is checker/strategies/brute_force_v3.py.
"""
