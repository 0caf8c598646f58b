"""Training: the models (model.py), the paper's recipe, bit-reproducible on every x86-64 CPU
(train.py, portable.py), the published models' manifest (manifest.py, models.json), the paper's
seeds (seeds.txt) and the cache of trained models by (K, seed) (zoo.py).

Nothing here imports torch at package import: generator/__init__.py imports portable.py first, so
the pins are in the environment before torch loads.
"""
