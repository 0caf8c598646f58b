"""heap.retained asks glibc to keep large temporaries on the heap and always restores the defaults."""

from __future__ import annotations

import numpy as np
import pytest

from compact_proofs.checker import heap


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, option, value):
        self.calls.append((option, value))
        return 1


def test_settings_are_restored_even_when_the_work_fails(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(heap, "_libc", lambda: libc)
    with pytest.raises(RuntimeError):
        with heap.retained():
            assert libc.calls == [(heap.M_MMAP_MAX, 0), (heap.M_TRIM_THRESHOLD, 1 << 30)]
            raise RuntimeError
    assert libc.calls[2:] == [(heap.M_MMAP_MAX, heap.DEFAULT_MMAP_MAX), (heap.M_TRIM_THRESHOLD, heap.DEFAULT_TRIM_THRESHOLD)]


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_libc", lambda: None)
    with heap.retained():
        pass


def test_results_do_not_depend_on_it():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 700)), rng.normal(size=(700, 500))
    outside = a @ b
    with heap.retained():
        inside = a @ b
    assert np.array_equal(inside, outside)
