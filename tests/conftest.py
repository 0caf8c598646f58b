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


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_memo():
    """Every test starts with an empty checker memo (checker/memo.py), so that monkeypatched
    checker internals are not bypassed by values an earlier test stored."""
    from compact_proofs.checker import memo

    memo.clear()


@pytest.fixture(scope="session")
def trained_k4() -> dict[str, np.ndarray]:
    """The paper's K=4 model for seed 123, trained with the paper's recipe (about 7 s)."""
    from compact_proofs.generator.model import ModelConfig
    from compact_proofs.generator.train import train

    model = train(123, ModelConfig(n_ctx=4))
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session")
def small_trained() -> tuple[dict[str, np.ndarray], int]:
    """A small trained model (d_vocab 12, n_ctx 4; about 2 s) and its exact count by brute force."""
    from compact_proofs.generator.model import ModelConfig
    from compact_proofs.generator.prover import prove
    from compact_proofs.generator.train import TrainConfig, train

    model = train(1, ModelConfig(d_vocab=12, n_ctx=4, d_model=16, d_head=8), TrainConfig(steps=800))
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return weights, prove(weights, "brute-force").verdict.verified_correct
