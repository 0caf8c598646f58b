import os

from hypothesis import HealthCheck, Phase, settings

# `ci` (default): derandomised and bounded, for `make test`; `thorough`: long local runs;
# `fuzz`: the fuzzing run of `make fuzz`.
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("fuzz", max_examples=40000, deadline=None, suppress_health_check=list(HealthCheck))
# `mutation`: the ci profile without shrinking, for `make mutation` (mutmut sets MUTANT_UNDER_TEST):
# a mutant is killed by the first failing example; shrinking it would only cost time.
settings.register_profile("mutation", settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          database=None)
default = "mutation" if os.environ.get("MUTANT_UNDER_TEST") else "ci"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))


from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_memo():
    """Every test starts with an empty checker memo (checker/memo.py), so that monkeypatched
    checker internals are not bypassed by values an earlier test stored."""
    from compact_proofs.checker import memo

    memo.clear()


PUBLISHED_K4 = Path(__file__).resolve().parents[1] / "certificates" / "max4-seed123.brute-force.msgpack"


@pytest.fixture(scope="session")
def trained_k4() -> dict[str, np.ndarray]:
    """The published K=4 model for seed 123 (the paper's recipe): the weights of the committed
    brute-force certificate, the same on every machine (test_train.py checks that training
    reproduces them)."""
    from compact_proofs.checker import certificate

    return {k: np.array(v) for k, v in certificate.load(PUBLISHED_K4).weights.items()}


@pytest.fixture(scope="session")
def small_trained() -> tuple[dict[str, np.ndarray], int]:
    """A small trained model (d_vocab 12, n_ctx 4; about 2 s) and its exact count by brute force."""
    from compact_proofs.generator.training.model import ModelConfig
    from compact_proofs.generator.proving.prover import prove
    from compact_proofs.generator.training.train import TrainConfig, train

    model = train(1, ModelConfig(d_vocab=12, n_ctx=4, d_model=16, d_head=8), TrainConfig(steps=800))
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return weights, prove(weights, "brute-force").verdict.verified_correct
