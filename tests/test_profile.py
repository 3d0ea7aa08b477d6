"""The profile suite on CPU: kernel names, attribution of work to mixer parts (forward by the enclosing
range, backward by autograd sequence numbers, CUDA kernels by correlation ids), rows, traces, the
`seqbench run profile` and `seqbench profile-summary` commands."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.autograd import DeviceType

from harness import registry, results
from harness.config import MixerConfig
from harness.errors import UserError
from harness.interface import Mixer, part
from suites import load_preset
from suites.profile import (
    cpu_samples,
    cuda_samples,
    kernel_rows,
    profile_workload,
    short_kernel_name,
)
from suites.throughput import workload

TINY_TIMING = {"budget_s": 0.01, "min_reps": 3, "min_time_s": 0.0, "warmup_max_calls": 3}


# ---------------------------------------------------------------------------------------------
# kernel names


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("aten::mm", "mm"),
        ("autograd::engine::evaluate_function: MmBackward0", "evaluate_function: MmBackward0"),
        ("Memcpy DtoD (Device -> Device)", "Memcpy DtoD"),
        ("Memset (Device)", "Memset"),
        ("chunk_fwd_kernel_o", "chunk_fwd_kernel_o"),
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, "
            "at::detail::Array<char*, 1> >(int, at::native::FillFunctor<float>, at::detail::Array<char*, 1>)",
            "vectorized_elementwise_kernel[FillFunctor]",
        ),
        (
            "void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<"
            "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::"
            "{lambda()#7}::operator()() const::{lambda(c10::BFloat16)#1}>(at::TensorIteratorBase&, "
            "at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::"
            "{lambda()#7}::operator()() const::{lambda(c10::BFloat16)#1} const&)::{lambda(int)#1}>(int, "
            "at::native::gpu_kernel_impl_nocast<...>)",
            "elementwise_kernel[direct_copy_kernel_cuda]",
        ),
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::BinaryFunctor<float, float, float, "
            "at::native::binary_internal::MulFunctor<float> >, at::detail::Array<char*, 3> >(int, ...)",
            "vectorized_elementwise_kernel[MulFunctor]",
        ),
        (
            "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
            "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>"
            ", unsigned int, float, 4, 4> >(at::native::ReduceOp<float, ...>)",
            "reduce_kernel[sum_functor]",
        ),
        (
            "void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, false, false, "
            "cutlass::bfloat16_t, Flash_kernel_traits<128, 128, 64, 4, cutlass::bfloat16_t> >, false, true, "
            "false, false, false, true, false, false>(pytorch_flash::Flash_fwd_params)",
            "flash_fwd_kernel",
        ),
        (
            "void (anonymous namespace)::softmax_warp_forward<float, float, float, 10, false, false>"
            "(float*, float const*, int, int, int, bool const*, int, bool)",
            "softmax_warp_forward",
        ),
        (
            "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8>"
            "(cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8::Params)",
            "cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8",
        ),
        (
            "std::enable_if<!(false), void>::type internal::gemvx::kernel<int, int, float, float, float, float, "
            "false, true, true, false, 7, false, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float "
            "const>, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float>, float> >"
            "(cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, float>)",
            "gemvx::kernel",
        ),
        ("nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NNT", "nvjet_tst_128x256_64x4_1x2_h_bz_coopA_NNT"),
    ],
)
def test_short_kernel_name(name: str, short: str) -> None:
    assert short_kernel_name(name) == short


def test_short_kernel_name_is_bounded() -> None:
    long_name = (
        "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel"
    )
    short = short_kernel_name(long_name)
    assert len(short) == 72 and short.endswith("…") and long_name.startswith(short[:-1])


# ---------------------------------------------------------------------------------------------
# a mixer whose operators are known: two projections (matmuls), a cumulative sum (core), an RMS norm


class ToyMixer(Mixer):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.config = MixerConfig(d_model=d_model)
        self.w_in = nn.Parameter(torch.randn(d_model, d_model) / math.sqrt(d_model))
        self.w_out = nn.Parameter(torch.randn(d_model, d_model) / math.sqrt(d_model))

    def _norm(self, h: torch.Tensor) -> torch.Tensor:
        with part("norm"):
            return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with part("projection"):
            h = x @ self.w_in
        with part("core"):
            h = torch.cumsum(h, dim=1)
        with part("projection"):
            return self._norm(h) @ self.w_out

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch, self.config.d_model, device=device, dtype=dtype)

    def step(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with part("projection"):
            h = x_t @ self.w_in
        with part("core"):
            state = state + h
        with part("projection"):
            return self._norm(state) @ self.w_out, state


def _profile_toy(mode: str, trace_dir: Path, steps: int = 2) -> list[dict]:
    torch.manual_seed(0)
    mixer = ToyMixer(16)
    x = torch.randn(2, 8, 16)
    fn, setup, _ = workload(mixer, x, mode, "layer")
    return profile_workload(fn, setup, "cpu", steps, trace_dir, f"toy_{mode}", TINY_TIMING)


def _calls(rows: list[dict], name: str) -> dict[str, int]:
    """part -> calls per step of operator `name`."""
    return {row["part"]: row["calls"] for row in rows if row["kernel_name"] == name}


def test_forward_operators_belong_to_their_ranges(tmp_path: Path) -> None:
    rows = _profile_toy("fwd", tmp_path)
    assert _calls(rows, "aten::mm") == {"projection": 2}  # x @ w_in and h @ w_out, once per step
    assert _calls(rows, "aten::cumsum") == {"core": 1}
    assert _calls(rows, "aten::rsqrt") == {"norm": 1}  # the innermost range wins (norm inside projection)


def test_backward_operators_inherit_the_forward_part(tmp_path: Path) -> None:
    rows = _profile_toy("fwd_bwd", tmp_path)
    # Each matmul's backward is two matmuls (gradients of the input and of the weight): 2 + 2·2 per step.
    assert _calls(rows, "aten::mm") == {"projection": 6}
    assert set(_calls(rows, "autograd::engine::evaluate_function: CumsumBackward0")) == {"core"}
    assert set(_calls(rows, "autograd::engine::evaluate_function: RsqrtBackward0")) == {"norm"}
    assert {row["part"] for row in rows} <= {"projection", "core", "norm", "other"}


def test_rows_add_up(tmp_path: Path) -> None:
    for mode in ("fwd_bwd", "decode"):
        rows = _profile_toy(mode, tmp_path / mode, steps=3)
        first = rows[0]
        assert math.isclose(sum(row["share"] for row in rows), 1.0, rel_tol=1e-9)
        assert math.isclose(sum(r["self_device_time_us"] for r in rows), first["step_device_time_us"], rel_tol=1e-9)
        assert sum(row["calls"] for row in rows) == first["launches"]  # every operator call, per step
        assert math.isclose(first["host_gap_us"], first["step_wall_time_us"] - first["step_device_time_us"])
        assert all(row["device_time_us"] >= row["self_device_time_us"] >= 0 for row in rows)
        assert [row["kernel_rank"] for row in rows] == list(range(1, len(rows) + 1))
        assert all(r["self_device_time_us"] >= s["self_device_time_us"] for r, s in itertools.pairwise(rows))
    assert _calls(rows, "aten::mm") == {"projection": 2}  # decode: one token, the same two matmuls


def test_trace_is_a_tensorboard_and_perfetto_trace(tmp_path: Path) -> None:
    rows = _profile_toy("fwd", tmp_path)
    trace = Path(rows[0]["trace_path"])
    assert trace.parent == tmp_path and trace.is_file()
    # tensorboard's profiler plugin finds traces by this pattern; the worker name is what it shows.
    match = re.match(r"^(.*?)(\.\d+)?\.pt\.trace\.json$", trace.name)
    assert match is not None and match.group(1) == "toy_fwd"
    events = json.loads(trace.read_text())["traceEvents"]
    names = {event.get("name") for event in events}
    assert {"seqbench::step", "seqbench::projection", "seqbench::core", "seqbench::norm", "aten::mm"} <= names
    steps = [e for e in events if e.get("name") == "seqbench::step" and e.get("ph") == "X"]
    assert len(steps) == 2 and all(e["dur"] > 0 for e in steps)


# ---------------------------------------------------------------------------------------------
# CUDA attribution, from events shaped like torch.profiler's (no GPU needed)


def _event(name, id, start, end, parent=None, device=DeviceType.CPU, linked=0, seq=-1, thread=1, fwd_thread=0, **kw):
    return SimpleNamespace(
        name=name,
        id=id,
        time_range=SimpleNamespace(start=start, end=end),
        cpu_parent=parent,
        device_type=device,
        linked_correlation_id=linked,
        sequence_nr=seq,
        thread=thread,
        fwd_thread=fwd_thread,
        is_user_annotation=name.startswith("seqbench::"),
        is_async=False,
        **kw,
    )


def _cuda_events(with_linked_ids: bool) -> list[SimpleNamespace]:
    cuda = DeviceType.CUDA
    flush = _event("aten::zero_", 1, -20, -19)
    step = _event("seqbench::step", 2, 0, 100)
    projection = _event("seqbench::projection", 3, 1, 10, step)
    mm = _event("aten::mm", 4, 2, 5, projection, seq=7)
    core = _event("seqbench::core", 5, 11, 15, step)  # a Triton kernel launched with no operator around it
    backward = _event("autograd::engine::evaluate_function: MmBackward0", 6, 50, 60, seq=7, thread=2, fwd_thread=1)
    mm_backward = _event("aten::mm", 7, 51, 55, backward, thread=2)
    launches = [  # runtime calls: the kernel's correlation id, linked to the operator (or range) around them
        _event("cudaLaunchKernel", 901, -19.5, -19.4, flush, linked=1),
        _event("cudaLaunchKernel", 902, 3, 4, mm, linked=4),
        _event("cuLaunchKernelEx", 903, 12, 13, core, linked=5),
        _event("cudaLaunchKernel", 904, 52, 53, mm_backward, thread=2, linked=7),
    ]
    kernels = [
        _event("flush_kernel", 901, -19, -18, device=cuda, linked=1),
        _event("gemm_forward", 902, 20, 30, device=cuda, linked=4),
        _event("triton_core", 903, 31, 41, device=cuda, linked=5),
        _event("gemm_backward", 904, 60, 64, device=cuda, linked=7),
        _event("seqbench::projection", 905, 20, 30, device=cuda, linked=3),  # gpu_user_annotation: not work
    ]
    events = [flush, step, projection, mm, core, backward, mm_backward, *launches, *kernels]
    if not with_linked_ids:  # older torch: no linked ids on FunctionEvent
        for event in events:
            del event.linked_correlation_id
    return events


@pytest.mark.parametrize("with_linked_ids", [True, False])
def test_cuda_kernels_are_attributed_through_correlation(with_linked_ids: bool) -> None:
    samples, steps = cuda_samples(_cuda_events(with_linked_ids))
    assert steps == 1
    assert {(s.name, s.part, s.time_us) for s in samples} == {
        ("gemm_forward", "projection", 10),
        ("triton_core", "core", 10),
        ("gemm_backward", "projection", 4),  # backward thread: the forward op with sequence number 7
    }
    rows = kernel_rows(samples, steps, step_wall_time_us=100.0)
    assert [r["kernel_name"] for r in rows] == ["gemm_forward", "triton_core", "gemm_backward"]
    assert [r["share"] for r in rows] == [10 / 24, 10 / 24, 4 / 24]
    assert rows[0]["step_device_time_us"] == 24 and rows[0]["host_gap_us"] == 76 and rows[0]["launches"] == 3


def test_cpu_samples_skip_ranges_and_work_outside_steps() -> None:
    events = [e for e in _cuda_events(True) if e.device_type == DeviceType.CPU and not e.name.startswith("cu")]
    for event in events:
        event.cpu_time_total = event.self_cpu_time_total = event.time_range.end - event.time_range.start
    samples, steps = cpu_samples(events)
    assert steps == 1
    assert sorted((s.name, s.part) for s in samples) == [
        ("aten::mm", "projection"),
        ("aten::mm", "projection"),
        ("autograd::engine::evaluate_function: MmBackward0", "projection"),
    ]


def test_no_kernels_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no kernels"):
        kernel_rows([], 3, 1.0)


# ---------------------------------------------------------------------------------------------
# every CPU reference marks its parts


@pytest.mark.parametrize(
    "name", [impl.name for impl in registry.implementations() if impl.backend == "reference" and impl.availability()]
)
def test_reference_mixers_emit_part_ranges(name: str) -> None:
    impl = registry.get(name)
    config = MixerConfig(d_model=32, n_heads=2, d_state=8, chunk_size=8)
    torch.manual_seed(0)
    mixer = impl.create(config)
    x = torch.randn(1, 16, 32)
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        mixer(x)
        _, state = mixer.prefill(x)
        mixer.step(x[:, 0], state)
    ranges = {e.name for e in profiler.events() if e.name.startswith("seqbench::")}
    assert {"seqbench::core", "seqbench::projection"} <= ranges, f"{name} marks only {sorted(ranges)}"


# ---------------------------------------------------------------------------------------------
# the commands


@pytest.fixture(scope="module")
def profile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from harness.cli import cli

    results_dir = tmp_path_factory.mktemp("results")
    args = ["run", "profile", "--preset", "cpu", "--name", "attention/reference", "--results", str(results_dir)]
    args += ["--mode", "fwd_bwd", "--mode", "decode", "--seq-len", "32"]
    outcome = CliRunner().invoke(cli, args)
    assert outcome.exit_code == 0, outcome.output
    return results_dir, outcome


def test_run_profile_writes_rows_and_traces(profile_run: tuple[Path, object]) -> None:
    from harness.results import read_results

    results_dir, _ = profile_run
    frame = read_results(results_dir / "profile")
    assert set(frame["status"]) == {"ok"} and set(frame["suite"]) == {"profile"}
    assert set(frame["mode"]) == {"fwd_bwd", "decode"} and set(frame["seq_len"]) == {32}
    for (run_id, job_id), job in frame.groupby(["run_id", "job_id"]):
        assert math.isclose(job["share"].sum(), 1.0, rel_tol=1e-9)
        assert {"projection", "core"} <= set(job["part"])
        (trace,) = set(job["trace_path"])
        assert Path(trace).parent == results.sidecar_dir(results_dir) / "traces" / run_id / job_id
        assert json.loads(Path(trace).read_text())["traceEvents"]
        roofline = job[job["achieved_tflops"].notna()]
        assert len(roofline) == 1 and roofline["part"].item() == "core"
        # the dominant core kernel: the largest self time among the core's rows
        core = job[job["part"] == "core"]
        assert roofline["self_device_time_us"].item() == core["self_device_time_us"].max()
        expected = roofline["flops"].item() / (core["self_device_time_us"].sum() / 1e6) / 1e12
        assert math.isclose(roofline["achieved_tflops"].item(), expected, rel_tol=1e-9)


def test_profile_summary_prints_top_kernels(profile_run: tuple[Path, object]) -> None:
    from harness.cli import cli

    results_dir, _ = profile_run
    outcome = CliRunner().invoke(cli, ["profile-summary", str(results_dir), "--top", "3", "--mode", "fwd_bwd"])
    assert outcome.exit_code == 0, outcome.output
    assert "attention/reference · fwd_bwd" in outcome.output and "decode" not in outcome.output
    assert "mm" in outcome.output and "projection" in outcome.output
    assert "parts: " in outcome.output and "trace: " in outcome.output and "host gap" in outcome.output

    empty = CliRunner().invoke(cli, ["profile-summary", str(results_dir), "--name", "mamba/reference"])
    assert empty.exit_code == 2 and "no profile rows with implementation" in empty.output
    typo = CliRunner().invoke(cli, ["profile-summary", str(results_dir), "--name", "attention/refrence"])
    assert typo.exit_code == 2 and typo.output.strip().endswith("did you mean attention/reference?"), typo.output


def test_job_ids_do_not_depend_on_where_traces_go(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.commands.run import RunOptions
    from suites.profile import build_jobs

    options = RunOptions(None, Path("results"), False, False, "auto", (), (), (), (), (), (), None)
    first = [job.job_id for job in build_jobs(load_preset("profile", "cpu"), options, "cpu")]
    monkeypatch.setenv("SEQBENCH_PROFILE_TRACE_DIR", "/elsewhere")
    assert [job.job_id for job in build_jobs(load_preset("profile", "cpu"), options, "cpu")] == first
    quick = build_jobs(load_preset("profile", "quick"), options, "cuda")
    assert quick and all(not registry.get(job.implementation).is_reference for job in quick)  # references cap at 2K
    bad = {**load_preset("profile", "cpu"), "stepz": 3}
    with pytest.raises(UserError, match="unknown key"):
        build_jobs(bad, options, "cpu")
