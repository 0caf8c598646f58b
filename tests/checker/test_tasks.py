"""The tasks of format v2, against plain Python definitions over every small input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from compact_proofs.checker import tasks
from compact_proofs.checker.errors import InvalidCertificate


def induction_label(x: tuple[int, ...]):
    earlier = [p for p in range(len(x) - 1) if x[p] == x[-1]]
    return x[max(earlier) + 1] if earlier else None


@pytest.mark.parametrize("V, N", [(1, 1), (2, 1), (2, 2), (3, 3), (4, 4), (3, 5)])
def test_labels_and_domain_sizes_match_the_definitions(V, N):
    xs = list(itertools.product(range(V), repeat=N))
    array = np.array(xs, dtype=np.int64).reshape(-1, N)
    for name, plain in (("max", max), ("min", min), ("induction", induction_label)):
        task = tasks.resolve(name)
        labels, domain = task.labels(array)
        want = [plain(x) for x in xs]
        assert domain.tolist() == [w is not None for w in want]
        assert [int(l) for l, d in zip(labels, domain) if d] == [w for w in want if w is not None]
        assert task.domain_size(V, N) == sum(w is not None for w in want)


def test_unknown_task_is_invalid():
    with pytest.raises(InvalidCertificate, match="unknown task"):
        tasks.resolve("sorting")
