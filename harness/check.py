"""`seqbench check`: does each implementation compute its family reference's function?

For one implementation, on fresh random weights and inputs (seeded):
  parallel   forward(x) of the implementation vs forward(x) of the reference,
  recurrent  a loop of step() over x vs the reference forward (parallel form == recurrent form),
  prefill    prefill() of the first half, then step() over the rest, vs the reference forward.
  grad_input   d<y, g>/dx for a random cotangent g, through the implementation's backward, vs the
               reference's (the suites time fwd_bwd and recall trains: a forward alone proves no backward).
  grad_params  the same for every parameter, each paired with the reference parameter it was loaded
               from; the row holds the worst parameter's error and names it (`detail`: all of them).
Each gradient's tolerance is the dtype's, or twice the error of the reference itself computed in the
dtype under test where that is larger (`gradient_tolerances`: gradients that cancel round badly in bf16).
The reference runs in float64 on the CPU and in float32 (TF32 off) on a GPU; the error is the RMS
ratio, compared with the tolerance of the dtype under test (harness.numerics).

The gradients are taken at a generic point: every reference parameter is moved by a small random amount
first, so that parameters initialised to constants (D = 1, zero biases, norm weights) differ from one
another and each implementation parameter pairs with exactly one reference parameter by its values.

Each implementation runs inside an isolated worker (on a GPU several workers at once): a kernel that
aborts the process (a compiler assertion, a segfault) becomes a failed row with its reason,
and the other checks go on.
"""

from __future__ import annotations

import copy
import queue
import threading
from dataclasses import asdict, dataclass
from typing import Any

import torch

from harness import registry
from harness.config import MixerConfig
from harness.interface import Implementation, Mixer, dtype_name, parse_dtype, run_recurrent
from harness.numerics import rms_ratio, tolerance
from harness.worker import Unavailable, Worker

FORWARD_TESTS = ("parallel", "recurrent", "prefill")
GRADIENT_TESTS = ("grad_input", "grad_params")
TESTS = FORWARD_TESTS + GRADIENT_TESTS
# Relative size of the random move of the reference's parameters before the gradient tests: large enough
# that bf16 copies of two parameters initialised alike differ (bf16 keeps ~3 significant digits), small
# enough to stay near the family's initialisation (a mixer's gates and decays keep their ranges).
GENERIC_POINT_SCALE = 0.05
GRADIENT_FLOOR_FACTOR = 2.0  # see gradient_tolerances

# Small sizes: the check is about the function, not speed. Multiples of 64 suit every chunked kernel.
DEFAULT_CONFIG = {"cpu": MixerConfig(d_model=64, n_heads=4), "cuda": MixerConfig(d_model=256, n_heads=4)}
DEFAULT_SEQ_LEN = {"cpu": 64, "cuda": 256}
DEFAULT_BATCH = 2
DTYPE_PREFERENCE = {
    "cpu": (torch.float64, torch.float32),
    "cuda": (torch.bfloat16, torch.float16, torch.float32),
}
CHECK_TIMEOUTS_S = {"start": 900.0}  # first calls compile and autotune Triton kernels
GPU_WORKERS = 8  # processes checking at once on a GPU


@dataclass
class CheckRow:
    implementation: str
    family: str
    backend: str
    device: str
    dtype: str
    test: str
    rms_ratio: float
    tolerance: float
    passed: bool
    status: str  # ok | failed | error | crash | timeout | oom | unavailable
    reason: str = ""
    detail: str = ""  # grad_params: "name=error" for every parameter, worst first

    @property
    def counts_as_failure(self) -> bool:
        """An `unavailable` row (a backward the library refuses here, by design) is reported, not failed."""
        return not self.passed and self.status != "unavailable"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_dtype(impl: Implementation, device: str) -> torch.dtype | None:
    for dtype in DTYPE_PREFERENCE[torch.device(device).type]:
        if dtype in impl.dtypes:
            return dtype
    return None


def reference_dtype(device: str) -> torch.dtype:
    return torch.float64 if torch.device(device).type == "cpu" else torch.float32


def compare_with_reference(
    name: str, device: str, dtype: str, config: dict[str, Any], batch: int, seq_len: int, seed: int
) -> list[dict[str, Any]]:
    """Runs inside a worker: build both mixers with shared weights and compare the three forms."""
    impl = registry.get(name)
    reference = registry.get(impl.reference_name)
    cfg = MixerConfig.from_dict(config)
    test_dtype, ref_dtype = parse_dtype(dtype), reference_dtype(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    torch.manual_seed(seed)
    ref_mixer = reference.create(cfg).to(device=device, dtype=ref_dtype).eval()
    mixer = impl.create(cfg).to(device=device, dtype=test_dtype).eval()
    mixer.load_reference_weights(ref_mixer)

    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    x_ref = torch.randn(batch, seq_len, cfg.d_model, generator=generator, dtype=torch.float64)
    x_ref = x_ref.to(device=device, dtype=ref_dtype)
    x = x_ref.to(test_dtype)
    half = seq_len // 2

    with torch.no_grad():
        expected = ref_mixer(x_ref)
        outputs = {"parallel": lambda: mixer(x), "recurrent": lambda: run_recurrent(mixer, x)}

        def prefill_then_step() -> torch.Tensor:
            y_first, state = mixer.prefill(x[:, :half])
            rest = []
            for t in range(half, seq_len):
                y_t, state = mixer.step(x[:, t], state)
                rest.append(y_t)
            return torch.cat([y_first, torch.stack(rest, dim=1)], dim=1)

        outputs["prefill"] = prefill_then_step
        limit = tolerance(test_dtype)
        rows = []
        for test in FORWARD_TESTS:
            try:
                error = rms_ratio(outputs[test](), expected)
                status, reason = ("ok", "") if error <= limit else ("failed", f"rms ratio {error:.3g} > {limit:g}")
            except Exception as exc:  # one form failing must not hide the others
                error, status, reason = float("nan"), "error", _one_line(exc)
            rows.append(_row(impl, device, dtype, test, error, limit, status, reason))

    def rebuild(dtype: torch.dtype) -> Mixer:  # the implementation again, in another dtype (gradient_rows)
        return impl.create(cfg).to(device=device, dtype=dtype)

    rows += gradient_rows(impl, mixer, ref_mixer, x_ref, device, dtype, limit, seed, rebuild)
    return [row.to_dict() for row in rows]


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _row(
    impl: Implementation,
    device: str,
    dtype: str,
    test: str,
    error: float,
    limit: float,
    status: str,
    reason: str,
    detail: str = "",
) -> CheckRow:
    return CheckRow(
        impl.name, impl.family, impl.backend, device, dtype, test, error, limit, status == "ok", status, reason, detail
    )


def move_to_generic_point(module: torch.nn.Module, seed: int) -> None:
    """Add GENERIC_POINT_SCALE x N(0, 1) x (mean |p| + 0.01) to every parameter, in place."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            scale = GENERIC_POINT_SCALE * (float(parameter.detach().abs().double().mean()) + 0.01)
            parameter.add_((noise * scale).to(parameter.device, parameter.dtype))


def pair_parameters(
    mixer: torch.nn.Module, reference: torch.nn.Module
) -> list[tuple[str, torch.nn.Parameter, torch.nn.Parameter]]:
    """(reference name, implementation parameter, reference parameter) for every trainable parameter of
    the implementation, paired by value: after `load_reference_weights` an implementation parameter holds
    one reference parameter's values rounded to its dtype, possibly renamed or reshaped (fla's RWKV-7 and
    the xlstm package name and shape them their own way). Raises ValueError when a parameter pairs with
    none or with several."""
    candidates = list(reference.named_parameters())
    pairs = []
    for name, theirs in mixer.named_parameters():
        if not theirs.requires_grad:
            continue
        flat = theirs.detach().flatten().double().cpu()
        matches = [
            (ref_name, ours)
            for ref_name, ours in candidates
            if ours.numel() == theirs.numel()
            and torch.equal(ours.detach().flatten().to(theirs.dtype).double().cpu(), flat)
        ]
        if len(matches) != 1:
            found = ", ".join(m[0] for m in matches) or "none"
            raise ValueError(f"parameter {name} pairs with {found} of the reference (need exactly one)")
        pairs.append((matches[0][0], theirs, matches[0][1]))
    return pairs


def gradient_rows(
    impl: Implementation,
    mixer: Mixer,
    ref_mixer: Mixer,
    x_ref: torch.Tensor,
    device: str,
    dtype: str,
    limit: float,
    seed: int,
    rebuild: Any = None,
) -> list[CheckRow]:
    """grad_input and grad_params rows: vector-Jacobian products with one random cotangent, implementation
    against reference, at a generic point of the parameters, each gradient judged against its tolerance
    (`gradient_tolerances`). Where grad_params fails in bf16 or fp16 and `rebuild(dtype)` can build the
    implementation in float32, the same comparison in float32 is added to the row's reason: it tells a
    gradient the low precision cannot resolve from a wrong one."""
    test_dtype = parse_dtype(dtype)
    # Gradients are taken in training mode, the mode the suites train in: cuDNN's RNN refuses a backward
    # in eval mode (seen on an H200 with lstm/cudnn, 2026-12-02). The mixers have no dropout, so the
    # forward is the same in both modes.
    mixer.train()
    ref_mixer.train()
    try:
        move_to_generic_point(ref_mixer, seed + 2)
        mixer.load_reference_weights(ref_mixer)
        generator = torch.Generator(device="cpu").manual_seed(seed + 3)
        cotangent = torch.randn(x_ref.shape, generator=generator, dtype=torch.float64).to(device)
        names, errors, limits = gradient_errors(mixer, ref_mixer, x_ref, cotangent, test_dtype, limit)
    except (Unavailable, NotImplementedError) as exc:
        # A backward the library refuses or lacks here (fla's on Hopper, FlexAttention's on the CPU):
        # reported as unavailable, not failed.
        reason = _one_line(exc)
        return [_row(impl, device, dtype, t, float("nan"), limit, "unavailable", reason) for t in GRADIENT_TESTS]
    except Exception as exc:
        return [_row(impl, device, dtype, t, float("nan"), limit, "error", _one_line(exc)) for t in GRADIENT_TESTS]

    rows = [_judged_row(impl, device, dtype, "grad_input", errors[0], limits[0], "")]
    if len(names) == 1:
        rows.append(_row(impl, device, dtype, "grad_params", 0.0, limit, "ok", "no trainable parameters"))
        return rows
    worst, detail = _worst_parameter(names, errors, limits)
    row = _judged_row(impl, device, dtype, "grad_params", errors[worst], limits[worst], names[worst], detail)
    if row.status == "failed" and test_dtype in LOW_PRECISION and torch.float32 in impl.dtypes and rebuild:
        row.reason += "; " + _in_float32(rebuild, ref_mixer, x_ref, cotangent)
    rows.append(row)
    return rows


LOW_PRECISION = (torch.bfloat16, torch.float16)


def gradient_errors(
    mixer: Mixer, ref_mixer: Mixer, x_ref: torch.Tensor, cotangent: torch.Tensor, dtype: torch.dtype, limit: float
) -> tuple[list[str], list[float], list[float]]:
    """(names, errors, tolerances) of the input's and every parameter's gradient: `mixer` (in `dtype`)
    against `ref_mixer` (float64), each tolerance from the reference's own error in `dtype`."""
    pairs = pair_parameters(mixer, ref_mixer)
    wanted = vector_jacobian(ref_mixer, x_ref, cotangent, [p for _, _, p in pairs])
    # The same math in the dtype under test: the rounding floor of each gradient (see gradient_tolerances).
    rounded_reference = copy.deepcopy(ref_mixer).to(dtype)
    by_name = dict(rounded_reference.named_parameters())
    floor = vector_jacobian(rounded_reference, x_ref.to(dtype), cotangent, [by_name[n] for n, _, _ in pairs])
    got = vector_jacobian(mixer, x_ref.to(dtype), cotangent, [p for _, p, _ in pairs])
    names = ["input", *(name for name, _, _ in pairs)]
    errors = [rms_ratio(g.flatten(), w.flatten()) for g, w in zip(got, wanted, strict=True)]
    limits = gradient_tolerances(
        limit, [rms_ratio(f.flatten(), w.flatten()) for f, w in zip(floor, wanted, strict=True)]
    )
    return names, errors, limits


def _worst_parameter(names: list[str], errors: list[float], limits: list[float]) -> tuple[int, str]:
    """The parameter closest to (or furthest beyond) its own tolerance, and every parameter's error/tolerance."""
    order = sorted(range(1, len(names)), key=lambda i: errors[i] / limits[i], reverse=True)
    return order[0], " ".join(f"{names[i]}={errors[i]:.2e}/{limits[i]:.1e}" for i in order)


def _in_float32(rebuild: Any, ref_mixer: Mixer, x_ref: torch.Tensor, cotangent: torch.Tensor) -> str:
    """The float32 verdict on the same gradients, for a reason: "in float32: passes (worst ...)"."""
    try:
        mixer = rebuild(torch.float32)
        mixer.train()
        mixer.load_reference_weights(ref_mixer)
        names, errors, limits = gradient_errors(
            mixer, ref_mixer, x_ref, cotangent, torch.float32, tolerance(torch.float32)
        )
    except Exception as exc:  # the confirmation is extra information: it must not turn the row into an error
        return f"float32 comparison failed to run: {_one_line(exc)}"
    worst, _ = _worst_parameter(names, errors, limits)
    verdict = "passes" if all(e <= t for e, t in zip(errors, limits, strict=True)) else "fails too"
    return f"in float32 it {verdict} (worst {names[worst]} {errors[worst]:.2e} vs {limits[worst]:.1e})"


def vector_jacobian(
    mixer: Mixer, x: torch.Tensor, cotangent: torch.Tensor, parameters: list[torch.nn.Parameter]
) -> list[torch.Tensor]:
    """[d<y, g>/dx, d<y, g>/dp for p in parameters] with y = mixer(x); a parameter autograd leaves unused
    gets a zero gradient (so an unused parameter on one side only shows as a difference)."""
    x = x.detach().clone().requires_grad_(True)
    y = mixer(x)
    grads = torch.autograd.grad(y, [x, *parameters], cotangent.to(y.dtype), allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, [x, *parameters], strict=True)]


def gradient_tolerances(limit: float, floors: list[float]) -> list[float]:
    """Per gradient: max(the dtype's tolerance, GRADIENT_FLOOR_FACTOR x the reference's own error in the
    dtype under test).

    A forward output is a sum of terms of one sign scale; a parameter gradient is a sum over every
    position and batch row, and where those terms cancel (a bias whose shift the next normalisation
    undoes: mLSTM's input-gate bias, Mamba-2's dt bias, RWKV-7's mixing weights) the true gradient is
    small against the rounding of its terms, so its RMS ratio in bf16 is large for *any* implementation:
    on an H200 our bf16 references themselves measured 0.03 (Mamba-2 dt_bias) to 0.70 (mLSTM igate.bias)
    against their float32 selves. The reference run in the dtype under test gives that floor for each
    gradient; an implementation within twice it rounds about as well as the readable math does. Chunked
    kernels can do worse without being wrong: mlstm_kernels' native chunkwise kernel in bf16 measured 2.6x
    that floor on mLSTM's igate.bias (CPU, 2026-12-02) and agreed to 4.6e-5 in float32. So a failing
    grad_params row in bf16 or fp16 also says what the float32 comparison finds (`gradient_rows`)."""
    return [max(limit, GRADIENT_FLOOR_FACTOR * floor) for floor in floors]


def _judged_row(
    impl: Implementation, device: str, dtype: str, test: str, error: float, limit: float, what: str, detail: str = ""
) -> CheckRow:
    where = f" ({what})" if what else ""
    if error <= limit:
        return _row(impl, device, dtype, test, error, limit, "ok", f"worst: {what}" if what else "", detail)
    return _row(
        impl, device, dtype, test, error, limit, "failed", f"rms ratio {error:.3g} > {limit:.3g}{where}", detail
    )


def _failed_rows(impl: Implementation, device: str, dtype: str, status: str, reason: str) -> list[CheckRow]:
    return [_row(impl, device, dtype, test, float("nan"), float("nan"), status, reason) for test in TESTS]


def run_checks(
    impls: list[Implementation],
    device: str = "cpu",
    dtypes: tuple[torch.dtype, ...] = (),
    config: MixerConfig | None = None,
    batch: int = DEFAULT_BATCH,
    seq_len: int | None = None,
    seed: int = 0,
    progress: Any = None,
    workers: int | None = None,
) -> tuple[list[CheckRow], list[tuple[Implementation, str]]]:
    """Check every implementation that can run here. Returns (rows in the order of `impls`, skipped with
    reasons). `workers` worker processes (default: one on CPU, where they would share two cores;
    GPU_WORKERS on a GPU) each take the next implementation to check until none is left: a check reads
    no clock, and on an H100 one process took 58 s for 30 implementations, one after another."""
    kind = torch.device(device).type
    config = config or DEFAULT_CONFIG[kind]
    seq_len = seq_len or DEFAULT_SEQ_LEN[kind]
    skipped: list[tuple[Implementation, str]] = []
    calls: list[tuple[Implementation, torch.dtype]] = []
    for impl in impls:
        for dtype in list(dtypes) or [default_dtype(impl, device)]:
            availability = impl.availability(device, dtype)
            if dtype is None or not availability:
                skipped.append((impl, availability.reason or f"no supported dtype on {kind}"))
            else:
                calls.append((impl, dtype))
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(calls)):
        pending.put(index)
    by_call: dict[int, list[CheckRow]] = {}

    def check_until_done() -> None:
        with Worker() as worker:
            while True:
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                impl, dtype = calls[index]
                if progress is not None:
                    progress(impl, dtype)
                by_call[index] = _check_one(worker, impl, device, dtype, config, batch, seq_len, seed)

    count = max(1, min(workers or (1 if kind == "cpu" else GPU_WORKERS), len(calls)))
    threads = [threading.Thread(target=check_until_done, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(by_call) != len(calls):  # a thread died of a bug (a job's failure is a row, never an exception)
        raise RuntimeError(f"checked {len(by_call)} of {len(calls)} implementations; see the errors above")
    rows = [row for index in sorted(by_call) for row in by_call[index]]
    return rows, skipped


def _check_one(
    worker: Worker,
    impl: Implementation,
    device: str,
    dtype: torch.dtype,
    config: MixerConfig,
    batch: int,
    seq_len: int,
    seed: int,
) -> list[CheckRow]:
    kwargs = {
        "name": impl.name,
        "device": device,
        "dtype": dtype_name(dtype),
        "config": {**config.__dict__},
        "batch": batch,
        "seq_len": seq_len,
        "seed": seed,
    }
    outcome = worker.call("harness.check:compare_with_reference", kwargs, CHECK_TIMEOUTS_S)
    if outcome.status == "ok":
        return [CheckRow(**row) for row in outcome.value]
    return _failed_rows(impl, device, dtype_name(dtype), outcome.status, outcome.reason)
