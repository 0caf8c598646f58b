"""The checker's second path: the standard library only (integers, Fraction, hashlib, struct).

No numpy, no python-flint, no msgpack: the certificate is decoded by msgpack_lite, the model is
held in Fractions, every exp is enclosed by arith's fixed-point series, and every decision is
exact (no float filter). It re-checks small brute-force and cubic certificates, so that neither
the fast path's libraries nor its float filter is trusted alone; tests cross-check the two paths.
Format v2 (two layers, tasks) is brute force in fixed-point intervals (transformer.py): there an
input no precision settles is not counted, as on the fast path (SEMANTICS.md, version 2).
It is slow by design: use it on small models (`compact-proofs-check --pure`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from fractions import Fraction

from compact_proofs.checker.pure import cubic as pure_cubic
from compact_proofs.checker.pure.cubic import count_cases
from compact_proofs.checker.pure import msgpack_lite
from compact_proofs.checker.pure import tensors
from compact_proofs.checker.pure import transformer as pure_transformer
from compact_proofs.checker.pure.arith import sign_of_exp_sum
from compact_proofs.checker.pure.errors import Malformed, Reject

SUPPORTED = ("brute-force", "cubic", "cubic/reference")
MAX_INPUTS = 1 << 20
MAX_CASES = 1 << 24
# memory, planned from the dimensions before any weight becomes a Fraction: every exact number
# held (a Fraction, an integer, an interval's end) counted at BYTES_PER_NUMBER, above what CPython
# takes for the largest of them (a 4096-bit fixed-point integer: about 540 bytes; a float64's
# Fraction, denominator up to 2^1074: about 270); tests/checker/test_pure.py compares the plan with
# measured peaks. A plan above MAX_MEMORY is a limit (exit 4), before anything is converted.
BYTES_PER_NUMBER = 640
MAX_MEMORY = 3 << 30
# the limits of schema/certificate-v1.md (the same as the fast path's, written again here)
MAX_FILE_BYTES, MAX_DECIMAL_DIGITS, MAX_GENERATOR_TEXT = 1 << 30, 1000, 4096
LIMITS = {"V": 4096, "N": 1024, "D": 4096, "H": 4096}
MAX_PATH_WORK = 1 << 31
NAME = re.compile(r"[A-Za-z0-9_.+/-]{1,200}\Z")
TOP = {"format", "version", "strategy", "params", "claim", "weights", "evidence", "generator", "digest"}
SHAPES = {  # key -> axes; "1" is the head axis, which may be omitted
    "embed.W_E": "VD", "pos_embed.W_pos": "ND", "blocks.0.attn.W_Q": "1DH", "blocks.0.attn.W_K": "1DH",
    "blocks.0.attn.W_V": "1DH", "blocks.0.attn.W_O": "1HD", "unembed.W_U": "DV",
    "blocks.0.attn.b_Q": "1H", "blocks.0.attn.b_K": "1H", "blocks.0.attn.b_V": "1H", "blocks.0.attn.b_O": "D", "unembed.b_U": "V",
}
REQUIRED = [k for k in SHAPES if ".W_" in k]


@dataclass
class PureVerdict:
    accepted: bool
    claimed_correct: int | None
    verified_correct: int | None
    total: int | None
    reason: str
    invalid: bool = False
    unsupported: bool = False  # a valid strategy this path does not check
    limit: bool = False  # too large for this path: nothing was decided
    strategy: str = ""
    notes: dict = field(default_factory=dict)
    weights_digest: str | None = None


SUBCUBIC_ERRORS = ("svd", "max_diff", "mean+max_diff", "max_diff_exact", "exact_EQKE+max_diff_exact", "max_diff_subproduct",
                   "mean+max_diff_subproduct", "max_diff_subproduct_recursive", "mean+max_diff_subproduct_recursive",
                   "mean_recursive+max_diff_subproduct_recursive")
SUBCUBIC_FAMILIES = (  # checker/strategies/subcubic: (EUPU handlings, attention handlings, attention-error handlings)
    (("mean_query+max_diff", "svd_query+max_diff", "max_diff", "max_diff_exact", "global_max_diff_exact"),
     ("mean_query+diff", "drop_average_query_per_output_logit_reasoning", "per_output+chords"), SUBCUBIC_ERRORS),
    (("max_diff_exact_per_max",), ("query_slot+ov_blocks+chords",), SUBCUBIC_ERRORS),
    (("max_diff_exact_per_max", "mean_query+max_diff_exact_per_max"), ("query_slot+ov_tiers+levels",),
     ("exact_EQKE+max_diff_exact", "max_diff_exact")),
)


def _evidence_fields(strategy: str) -> list[set[str]]:
    """The evidence field sets a strategy reads (the same rule as checker/strategies.evidence_fields)."""
    if strategy == "brute-force":
        return [set()]
    if strategy.startswith("cubic"):
        base = {"candidates"} if strategy == "cubic" else set()
        return [base | {"claims"}, base]
    eupu, attention, error = strategy.split("/")[1:]
    fields = {"gaps", "claims"} | ({"anchors"} if attention != "drop_average_query_per_output_logit_reasoning" else set())
    fields |= {"levels"} if attention == "query_slot+ov_tiers+levels" else set()
    fields |= {"eupu_direction"} if eupu == "svd_query+max_diff" else set()
    if error in SUBCUBIC_ERRORS[:4]:
        return [fields | {"eqke_u", "eqke_v"}]
    if error != "exact_EQKE+max_diff_exact":
        fields |= {f"peel{i}_{side}" for i in range(1, 5) for side in ("left", "right")}
    return [fields]


def _known(strategy: str) -> bool:
    parts = strategy.split("/")
    return strategy in SUPPORTED or (len(parts) == 4 and parts[0] == "subcubic"
                                      and any(parts[1] in eupus and parts[2] in attentions and parts[3] in errors
                                              for eupus, attentions, errors in SUBCUBIC_FAMILIES))


# ---------------------------------------------------------------------------------------------
# the certificate


def _evidence_value(value, what: str) -> None:
    if isinstance(value, dict):
        tensors.validate(value, what)
    elif not (isinstance(value, bool) or (isinstance(value, int) and -(2**63) <= value < 2**64)
              or (isinstance(value, str) and len(value) <= MAX_DECIMAL_DIGITS)):
        raise Malformed(f"{what} must be a tensor, an integer, a boolean or a short string")


def parse(raw: bytes) -> dict:
    """The container and the top-level fields, by the rules of schema/certificate-v1.md."""
    if len(raw) > MAX_FILE_BYTES:
        raise Malformed(f"file larger than {MAX_FILE_BYTES} bytes")
    try:
        doc = msgpack_lite.decode(raw)
        canonical = msgpack_lite.encode(doc) == raw
    except msgpack_lite.Malformed as exc:
        raise Malformed(f"not a certificate ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != "compact-proofs/certificate" or type(doc.get("version")) is not int \
            or doc["version"] not in (1, 2, 3) or set(doc) != {1: TOP, 2: TOP | {"task"}, 3: TOP | {"task", "architecture"}}[doc["version"]]:
        raise Malformed("not a version-1, -2 or -3 certificate")
    if doc["version"] == 2 and not (isinstance(doc["task"], str) and NAME.match(doc["task"])):
        raise Malformed("malformed task name")
    if doc["version"] == 3:
        _task_v3(doc["task"], doc["architecture"])
    if not canonical:
        raise Malformed("not in canonical encoding")
    body = {k: v for k, v in doc.items() if k != "digest"}
    if doc["digest"] != "sha256:" + hashlib.sha256(msgpack_lite.encode(body)).hexdigest():
        raise Malformed("digest does not match")
    claim = doc["claim"]
    if not isinstance(claim, dict) or set(claim) != {"correct", "total"} or not all(
            isinstance(claim[k], str) and re.fullmatch(r"0|[1-9][0-9]{0,999}", claim[k]) for k in claim):
        raise Malformed("malformed claim")
    for part in ("params", "weights", "evidence", "generator"):
        if not isinstance(doc[part], dict):
            raise Malformed(f"{part} must be a map")
    if not isinstance(doc["strategy"], str) or not NAME.match(doc["strategy"]):
        raise Malformed("malformed strategy name")
    for key, value in doc["params"].items():
        if not NAME.match(key) or not (isinstance(value, (bool, str)) or (isinstance(value, int) and -(2**63) <= value < 2**64)):
            raise Malformed("malformed params")
    if not all(isinstance(v, str) and len(v) < MAX_GENERATOR_TEXT for v in doc["generator"].values()):
        raise Malformed("generator must map names to strings")
    for key, value in doc["weights"].items():
        if not NAME.match(key):
            raise Malformed("malformed weight name")
        tensors.validate(value, f"weight {key}")
    for key, value in doc["evidence"].items():
        if not NAME.match(key):
            raise Malformed("malformed evidence name")
        _evidence_value(value, f"evidence {key}")
    return doc


def _task_v3(task, architecture) -> None:
    """Format v3's task and architecture maps, by the container rules of schema/certificate-v3.md
    (the sha256 of a task file is checked against its bytes)."""
    if not isinstance(task, dict) or set(task) not in ({"name"}, {"name", "file", "sha256"}) \
            or not (isinstance(task["name"], str) and NAME.match(task["name"])):
        raise Malformed("malformed task")
    if "file" in task and not (isinstance(task["file"], bytes) and len(task["file"]) <= 1 << 28 and isinstance(task["sha256"], str)
                               and task["sha256"] == "sha256:" + hashlib.sha256(task["file"]).hexdigest()):
        raise Malformed("task sha256 is not the sha256 of the task file's bytes")
    if not isinstance(architecture, dict) or len(architecture) > 8 or not all(
            NAME.match(k) and isinstance(v, str) and NAME.match(v) for k, v in architecture.items()):
        raise Malformed("malformed architecture")


def weights_digest(weights: dict) -> str:
    """The model digest (the fast path's checker.weights.key_of)."""
    return tensors.digest(weights, lambda key: SHAPES[key][0] == "1" and len(SHAPES[key]) - 1)


def dimensions(weights: dict) -> dict[str, int]:
    """{V, N, D, H} of validated weights (keys, dtypes, shapes and the format's limits) and the
    number of weight elements, "elements", from the tensors' headers alone: nothing is converted."""
    if not isinstance(weights, dict) or not set(REQUIRED) <= set(weights) <= set(SHAPES):
        raise Malformed("weights: missing or unsupported keys")
    dims: dict[str, int] = {}
    elements = 0
    for key, axes in SHAPES.items():
        if key not in weights:
            continue
        _, shape, count = tensors.header(weights[key], key)
        elements += count
        if weights[key]["dtype"] not in ("<f4", "<f8"):
            raise Malformed(f"{key} must be float32 or float64")
        if axes[0] == "1" and len(shape) == len(axes) - 1:
            shape = (1,) + shape
        if len(shape) != len(axes):
            raise Malformed(f"{key} has the wrong number of axes")
        for size, axis in zip(shape, axes):
            if size != (1 if axis == "1" else dims.setdefault(axis, size)):
                raise Malformed(f"{key} has an inconsistent shape")
    V, N, D, H = dims["V"], dims["N"], dims["D"], dims["H"]
    v, n, d, h = V + 1, N + 1, D + 1, H + 1  # the largest product the format allows (checker/weights.py)
    largest = max(v * d * h, n * d * h, h * d * v, v * h * v, v * h * n, n * h * v, v * d * v, d * v * d, h * v * h)
    if any(not 1 <= dims[axis] <= LIMITS[axis] for axis in LIMITS) or largest > MAX_PATH_WORK:
        raise Malformed("weights: a dimension is outside the format's limits")
    return {"V": V, "N": N, "D": D, "H": H, "elements": elements}


def memory_bytes(dims: dict[str, int], strategy: str) -> int:
    """What a check holds at once, planned: the weights, the path tables and what a strategy adds
    (the cubic: a claim and its integer per case), BYTES_PER_NUMBER each."""
    V, N, D, H = dims["V"], dims["N"], dims["D"], dims["H"]
    numbers = dims["elements"] + 3 * V * V + 2 * V * N + 2 * V * H + N * H + H * V + 2 * V * D
    if strategy.startswith("cubic"):
        numbers += 2 * count_cases(V, N) + 4 * V * V
    return numbers * BYTES_PER_NUMBER


def model(weights: dict) -> dict:
    """Dimensions and exact weights (lists of Fractions), biases zero when absent."""
    dims = dimensions(weights)
    out = {}
    for key, axes in SHAPES.items():
        if key in weights:
            flat, shape = tensors.decode(weights[key], key)
            shape = (1,) + shape if axes[0] == "1" and len(shape) == len(axes) - 1 else shape
            out[key] = tensors.nest([Fraction(x) for x in flat], shape[1:] if axes[0] == "1" else shape)
    V, N, D, H = dims["V"], dims["N"], dims["D"], dims["H"]
    zero = lambda n: [Fraction(0)] * n  # noqa: E731
    return {"V": V, "N": N, "D": D, "H": H,
            **{k.rsplit(".", 1)[1]: out[k] for k in REQUIRED},
            "b_Q": out.get("blocks.0.attn.b_Q", zero(H)), "b_K": out.get("blocks.0.attn.b_K", zero(H)),
            "b_V": out.get("blocks.0.attn.b_V", zero(H)), "b_O": out.get("blocks.0.attn.b_O", zero(D)),
            "b_U": out.get("unembed.b_U", zero(V))}


# ---------------------------------------------------------------------------------------------
# the path tables


def _vm(v, m):
    return [sum((v[i] * m[i][j] for i in range(len(v))), Fraction(0)) for j in range(len(m[0]))]


def _add(a, b):
    return [x + y for x, y in zip(a, b)]


def _dot(a, b):
    return sum((x * y for x, y in zip(a, b)), Fraction(0))


def paths(w: dict) -> dict:
    """EQKE[q][t], EQKP[q][i], EVOU[t][o], PVOU[i][o], EUPU[q][o] (see checker/paths.py)."""
    V, N = w["V"], w["N"]
    e_bar = [_add(w["W_E"][q], w["W_pos"][N - 1]) for q in range(V)]
    query = [_add(_vm(e, w["W_Q"]), w["b_Q"]) for e in e_bar]
    key_tok = [_add(_vm(e, w["W_K"]), w["b_K"]) for e in w["W_E"]]
    key_pos = [_vm(p, w["W_K"]) for p in w["W_pos"]]
    ou = [_vm(row, w["W_U"]) for row in w["W_O"]]
    return {
        "EQKE": [[_dot(qv, k) for k in key_tok] for qv in query],
        "EQKP": [[_dot(qv, k) for k in key_pos] for qv in query],
        "EVOU": [_vm(_add(_vm(e, w["W_V"]), w["b_V"]), ou) for e in w["W_E"]],
        "PVOU": [_vm(_vm(p, w["W_V"]), ou) for p in w["W_pos"]],
        "EUPU": [_add(_vm(_add(e, w["b_O"]), w["W_U"]), w["b_U"]) for e in e_bar],
    }


# ---------------------------------------------------------------------------------------------
# the strategies


def _settled(terms, d_head: int) -> int | None:
    """The exact sign, or None if the precision cap did not settle it: every caller accepts only
    a sign it needs (== 1, or in (-1, 0)), so None never satisfies an accept condition."""
    try:
        return sign_of_exp_sum(terms, d_head)
    except ArithmeticError:
        return None


def brute_force(w: dict, p: dict, progress=lambda stage, done, total: None) -> int:
    """Every input decided exactly: correct iff every margin is certainly positive."""
    V, N = w["V"], w["N"]
    correct = 0
    for index in range(V**N):
        if index % V ** (N - 1) == 0:
            progress("brute force (pure)", index // V ** (N - 1), V)
        x = [(index // V**i) % V for i in reversed(range(N))]
        q, m = x[-1], max(x)
        scores = [p["EQKE"][q][t] + p["EQKP"][q][i] for i, t in enumerate(x)]
        rows = [[p["EVOU"][t][o] + p["PVOU"][i][o] + p["EUPU"][q][o] for o in range(V)] for i, t in enumerate(x)]
        correct += all(_settled([(s, r[m] - r[o]) for s, r in zip(scores, rows)], w["H"]) == 1 for o in range(V) if o != m)
    progress("brute force (pure)", V, V)
    return correct


def estimated_seconds(strategy: str, V: int, N: int) -> float:
    """A rough forecast of this path's time (measured on a 2-core machine; any machine within 10x)."""
    if strategy == "brute-force":
        return V**N * V * N * 4e-6
    tests = 1 if strategy == "cubic/reference" else min(V, 17)
    return count_cases(V, N) * tests * 2 * 2e-6 + V * V * N * 2e-5


def check_cubic(w: dict, p: dict, evidence: dict, reference: bool, progress=lambda stage, done, total: None) -> tuple[int, dict]:
    """Per-case claims checked, or (absent: the derived format) derived here, then counted."""
    V, N = w["V"], w["N"]
    cases = count_cases(V, N)
    claims = None
    if "claims" in evidence:
        claims, shape = tensors.decode(evidence["claims"], "claims")
        if evidence["claims"]["dtype"] != "<f4" or shape != (cases,):
            raise Malformed("claims must be float32, one per case")
    cand_rows = None
    if not reference:
        flat, shape = tensors.decode(evidence["candidates"], "candidates")
        pairs = V * (V + 1) // 2
        if evidence["candidates"]["dtype"] != "<i8" or len(shape) != 2 or shape[0] != pairs or shape[1] > 16:
            raise Malformed("candidates must be int64 [(m, q) pairs, r <= 16]")
        r = shape[1]
        cand_rows = [flat[i * r : (i + 1) * r] for i in range(pairs)]
        m_of_row = [m for m in range(V) for _ in range(m + 1)]
        if any(not 0 <= o < V or o == m for row, m in zip(cand_rows, m_of_row) for o in row):
            raise Malformed("candidates must be outputs in [0, d_vocab) other than m")
    return pure_cubic.check(w, p, claims, cand_rows, reference, progress)


def _conclude(verdict: PureVerdict) -> None:
    verdict.accepted = verdict.claimed_correct <= verdict.verified_correct
    verdict.reason = "claim established" if verdict.accepted else "claim exceeds the established count"


def _too_large(verdict: PureVerdict, need: int) -> None:
    if need > MAX_MEMORY:
        verdict.limit = True
        raise Reject(f"too large for the pure checker (it would hold about {need >> 20} MiB of exact numbers, above "
                     f"{MAX_MEMORY >> 20} MiB)")


def _check_v2(doc: dict, verdict: PureVerdict, progress, notice) -> None:
    """Format v2 (schema/certificate-v2.md): brute force over the task's domain (pure/transformer.py).
    Sizes and memory are checked from the tensors' headers before any weight is converted."""
    compact = {f"induction/{k}/{q}": {"tree"} for k in ("exact", "mixture") for q in ("vertices", "intervals")} | {"induction/positions": set(), "induction/positions2": set()}
    if doc["strategy"] != "brute-force" and doc["strategy"] not in compact:
        raise Malformed(f"format v2 takes the strategies brute-force and {', '.join(compact)}, not {doc['strategy']!r}")
    fields = compact.get(doc["strategy"], set())
    if doc["params"] or set(doc["evidence"]) != fields:
        raise Malformed(f"{doc['strategy']} takes no parameters and " + (f"exactly the evidence {sorted(fields)}" if fields else "no evidence"))
    if doc["task"] not in pure_transformer.TASKS:
        raise Malformed(f"unknown task {doc['task']!r}")
    dims = pure_transformer.dimensions(doc["weights"])
    verdict.total = pure_transformer.domain(doc["task"], dims["V"], dims["N"])
    verdict.weights_digest = pure_transformer.weights_digest(doc["weights"])
    if doc["strategy"] != "brute-force":
        verdict.unsupported = True
        raise Reject(f"strategy {doc['strategy']!r} is not supported by the pure checker (format v2: brute-force only)")
    if int(doc["claim"]["total"]) != verdict.total or verdict.claimed_correct > verdict.total:
        raise Reject(f"claim does not match the {doc['task']} domain's size")
    if dims["V"] ** dims["N"] > pure_transformer.MAX_INPUTS:
        verdict.limit = True
        raise Reject(f"too large for the pure checker (brute force above {pure_transformer.MAX_INPUTS} inputs)")
    _too_large(verdict, pure_transformer.memory_bytes(dims, BYTES_PER_NUMBER))
    forecast = pure_transformer.estimated_seconds(dims)
    if forecast > 60:
        notice(f"the pure checker expects about {forecast / 60:.0f} min for this certificate")
    w = pure_transformer.model(doc["weights"])
    verdict.verified_correct, verdict.notes = pure_transformer.brute_force(w, doc["task"], progress)
    verdict.notes = {"task": doc["task"], "layers": len(w["layers"]), "heads": w["H"], **verdict.notes}
    _conclude(verdict)


def _check_v1(doc: dict, verdict: PureVerdict, progress, notice) -> None:
    """Format v1 (schema/certificate-v1.md): brute force and cubic. Sizes and memory are checked
    from the tensors' headers before any weight is converted."""
    if not _known(doc["strategy"]):
        raise Malformed(f"unknown strategy {doc['strategy']!r}")
    if doc["params"]:
        raise Malformed("no strategy takes parameters")
    if set(doc["evidence"]) not in _evidence_fields(doc["strategy"]):
        raise Malformed(f"{doc['strategy']} reads the evidence {' or '.join(str(sorted(f)) for f in _evidence_fields(doc['strategy']))}")
    dims = dimensions(doc["weights"])
    V, N = dims["V"], dims["N"]
    verdict.total, verdict.weights_digest = V**N, weights_digest(doc["weights"])
    if doc["strategy"] not in SUPPORTED:
        verdict.unsupported = True
        raise Reject(f"strategy {doc['strategy']!r} is not supported by the pure checker (brute-force and cubic only)")
    if int(doc["claim"]["total"]) != verdict.total or verdict.claimed_correct > verdict.total:
        raise Reject("claim does not match d_vocab^n_ctx")
    if (doc["strategy"] == "brute-force" and verdict.total > MAX_INPUTS) or count_cases(V, N) > MAX_CASES:
        verdict.limit = True
        raise Reject(f"too large for the pure checker ({doc['strategy']} above {MAX_INPUTS} inputs or {MAX_CASES} cases)")
    _too_large(verdict, memory_bytes(dims, doc["strategy"]))
    forecast = estimated_seconds(doc["strategy"], V, N)
    if forecast > 60:
        notice(f"the pure checker expects about {forecast / 60:.0f} min for this {doc['strategy']} certificate")
    w = model(doc["weights"])
    p = paths(w)
    if doc["strategy"] == "brute-force":
        verdict.verified_correct = brute_force(w, p, progress)
    else:
        verdict.verified_correct, verdict.notes = check_cubic(w, p, doc["evidence"], doc["strategy"] == "cubic/reference", progress)
    _conclude(verdict)


def check_bytes(raw: bytes, progress=lambda stage, done, total: None, notice=lambda message: None) -> PureVerdict:
    """ACCEPT iff the claimed count is at most the count established here. `notice` hears, before
    any long work, how long the check is expected to take when that is more than a minute."""
    verdict = PureVerdict(False, None, None, None, "")
    try:
        doc = parse(raw)
        verdict.claimed_correct = int(doc["claim"]["correct"])
        verdict.strategy = doc["strategy"]
        if doc["version"] == 3:  # said up front, before any weight is read
            verdict.unsupported = True
            raise Reject("format v3 (MLPs, LayerNorm, the tasks of SEMANTICS.md version 3) is checked by the fast path only")
        (_check_v2 if doc["version"] == 2 else _check_v1)(doc, verdict, progress, notice)
    except Reject as exc:
        verdict.reason, verdict.invalid = str(exc), isinstance(exc, Malformed)
    except Exception as exc:  # never an accept
        verdict.reason = f"internal error: {type(exc).__name__}: {exc}"
    return verdict
