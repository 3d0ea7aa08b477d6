"""nox sessions: `nox -s bench` (the main job), `nox -s report`, `nox -s tests` (pytest on CPU), `nox -s lint`.

torch is pinned to a CPU-friendly release: on this project's CPU machines `pip install torch==2.13.0`
takes a CPU build from the local wheel cache. Elsewhere set SEQBENCH_TORCH to another requirement
(e.g. "torch==2.13.0" with PIP_INDEX_URL pointing at PyTorch's CPU index) to avoid a multi-GB CUDA build.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
# Where `--wheels DIR` (or this variable) points, GPU dependencies come from that folder only (air-gapped nodes).
WHEELS_ENV = "SEQBENCH_WHEELS"
# mamba-ssm and causal-conv1d are sdists: install their Python code only (no download of a prebuilt wheel, no
# compilation for ~9 architectures); `seqbench kernels build` compiles what is needed for the local GPU.
SDIST_ENV = {
    "MAMBA_SKIP_CUDA_BUILD": "TRUE",
    "MAMBA_FORCE_BUILD": "TRUE",
    "CAUSAL_CONV1D_SKIP_CUDA_BUILD": "TRUE",
    "CAUSAL_CONV1D_FORCE_BUILD": "TRUE",
}
nox.options.reuse_existing_virtualenvs = True

TORCH = os.environ.get("SEQBENCH_TORCH", "torch==2.13.0")
# The bench's stages, in order (anchors only with `-- --anchors`). `-- --stages throughput,report` runs only
# those: to finish a run in parts on machines held for a limited time, `--resume` continuing each suite's run.
STAGES = ("kernels", "check", "throughput", "memory", "recall", "profile", "anchors", "report")
# The stages measured in one pass of `seqbench bench` (one worker per family for all of them), in the order
# each family's process runs them: the timed suites first, profile (torch.profiler) last.
PASS_STAGES = ("throughput", "memory", "recall", "profile")
# Stage times measured on a fresh H200 (issue 24, 2026-12-02: `--wheels DIR`, no caches): what a first run on a
# GPU machine expects of a stage until a run of its results folder has recorded its own (STAGE_TIMES_FILE).
FRESH_GPU_STAGE_S = {"install": 17.0, "kernels": 148.0, "check": 195.0}
STAGE_TIMES_FILE = "stage-times.json"  # in the results folder's sidecar `<results>-logs/` (harness.results)


def stage_times_path(results_dir: str) -> Path:
    """`<results>-logs/stage-times.json`, beside the results folder as harness.results.sidecar_dir puts logs
    (nox's own Python may lack seqbench's requirements, so the one line is repeated here)."""
    path = Path(results_dir)
    return path.parent / f"{path.resolve().name}-logs" / STAGE_TIMES_FILE


def earlier_stage_times(path: Path) -> dict[str, float]:
    """Each stage's seconds in the last run that recorded it ({} before any, or if the file is unreadable)."""
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def record_stage_time(path: Path, name: str, seconds: float) -> None:
    times = earlier_stage_times(path) | {name: round(seconds, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(times, indent=1))


def stage_eta_line(name: str, earlier: dict[str, float], cuda: bool, now: float) -> str:
    """`stage check: ~3 min expected (this results folder's last run), ETA 14:52`, before a stage starts."""
    seconds, source = earlier.get(name), "this results folder's last run"
    if seconds is None and cuda and name in FRESH_GPU_STAGE_S:
        seconds, source = FRESH_GPU_STAGE_S[name], "a fresh H200"
    if seconds is None:
        return f"stage {name}: no earlier time to estimate it from (the pass prints its own per suite)"
    expected = f"~{seconds / 60:.0f} min" if seconds >= 60 else f"~{max(seconds, 1):.0f} s"
    at = time.strftime("%H:%M", time.localtime(now + seconds))
    return f"stage {name}: {expected} expected ({source}), ETA {at}"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on CPU (tests marked `gpu` skip themselves without CUDA)."""
    session.install(TORCH)
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff>=0.6,<1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def _pop_option(args: list[str], name: str) -> str | None:
    """Remove `name VALUE` (or `name=VALUE`) from args and return VALUE."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i : i + 2]
            return value
        if arg.startswith(name + "="):
            del args[i]
            return arg.split("=", 1)[1]
    return None


def _has_cuda(session: nox.Session) -> bool:
    code = (
        "try:\n    import torch\n    print('has-cuda' if torch.cuda.is_available() else 'no-cuda')\n"
        "except ImportError:\n    print('no-torch')"
    )
    return "has-cuda" in str(session.run("python", "-c", code, silent=True, log=False))


def _has_cuda_launcher() -> bool:
    """Whether a GPU is likely before the install (for the install's estimate only): nvidia-smi is on PATH."""
    import shutil

    return shutil.which("nvidia-smi") is not None


def _gpu_baselines() -> list[str]:
    """The committed baselines' results folders (not their `-logs` sidecars)."""
    root = Path("baselines")
    return (
        sorted(str(p) for p in root.iterdir() if p.is_dir() and not p.name.endswith("-logs")) if root.is_dir() else []
    )


def _reuse_launcher_torch(session: nox.Session) -> bool:
    """Let the session's virtualenv import the torch (and the rest) of the Python that runs nox.

    `--system-site-packages` alone is not enough: when nox itself runs from a virtualenv (as on most GPU
    images and clusters), the new environment sees the *base* interpreter's site-packages, not that
    virtualenv's. A .pth file naming the launcher's site directories works in both cases; packages installed
    into the session's own environment still come first on sys.path. False where nox's Python has no torch."""
    try:
        import torch
    except ImportError:
        return False
    site_dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
    site_packages = session.run(
        "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", silent=True, log=False
    )
    with open(os.path.join(str(site_packages).strip(), "_seqbench_launcher_site.pth"), "w") as handle:
        handle.write("".join(path + "\n" for path in site_dirs))
    session.log(f"reusing torch {torch.__version__} and the packages of {', '.join(site_dirs)}")
    return True


def _install_from_folder(session: nox.Session, folder: str) -> None:
    """Every wheel and sdist in `folder` as it is (--no-deps: the folder holds what the node lacks, and
    mamba-ssm's Mamba-3-only dependencies may be left out), then seqbench itself, all without network."""
    wheels = sorted(str(p) for p in Path(folder).glob("*.whl"))
    sdists = sorted(str(p) for p in Path(folder).glob("*.tar.gz"))
    if not wheels and not sdists:
        session.error(f"--wheels {folder}: no .whl or .tar.gz files there")
    offline = ["--no-index", "--find-links", folder, "--no-deps", "--no-build-isolation"]
    if wheels:
        session.install(*offline, *wheels)
    if sdists:
        session.install(*offline, *sdists, env=SDIST_ENV)
    # seqbench's own requirements (pandas, pyarrow, ...) are usually on the node already, yet not always
    # with the metadata pip wants: install without resolving, then import each and name what is missing.
    session.install(*offline, "-e", ".")
    modules = "torch, numpy, click, rich, pandas, pyarrow, matplotlib"
    session.run("python", "-c", f"import {modules}", log=False)


def _install_fingerprint(wheels: str | None, cuda: bool) -> str:
    """What an install of the bench session depends on: pyproject.toml, the wheels folder's files, CUDA."""
    parts = [Path("pyproject.toml").read_text(), f"cuda={cuda}", f"torch={TORCH}", f"wheels={wheels}"]
    if wheels:
        parts += sorted(f"{path.name} {path.stat().st_size}" for path in Path(wheels).iterdir() if path.is_file())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@nox.session(venv_params=["--system-site-packages"])
def bench(session: nox.Session) -> None:
    """The main job: check, then the throughput, memory, profile and recall suites (in one pass), then the report.

    With CUDA: the `quick` presets (override with `-- --preset full`), and with `-- --anchors` the published
    anchors too (for a baseline). Without CUDA: the `cpu` presets. `-- --wheels DIR` installs GPU dependencies
    from DIR only (no network); `-- --stages a,b` runs only those stages; `-- --report DIR` chooses the report
    folder. Other arguments after `--` pass through to `seqbench bench` and `seqbench run` (`--resume`, `--family`)."""
    args = list(session.posargs)
    wheels = _pop_option(args, "--wheels") or os.environ.get(WHEELS_ENV)
    preset = _pop_option(args, "--preset")
    results_dir = _pop_option(args, "--results") or "results"
    report_dir = _pop_option(args, "--report")
    chosen = _pop_option(args, "--stages")
    with_anchors = "--anchors" in args
    args = [arg for arg in args if arg != "--anchors"]
    # The anchors (124 jobs at the published shapes, up to 64K tokens) are for baselines: asked for.
    wanted = set(chosen.split(",")) if chosen else set(STAGES) - ({"anchors"} if not with_anchors else set())
    if wanted - set(STAGES):
        session.error(f"--stages: unknown {', '.join(sorted(wanted - set(STAGES)))}; known: {', '.join(STAGES)}")
    timings: list[tuple[str, float]] = []
    times_path = stage_times_path(results_dir)
    earlier = earlier_stage_times(times_path)  # read once: the estimates come from the last run, not this one
    gpu_expected = _has_cuda_launcher()

    def stage(name: str, *command: str, required: bool = True) -> None:
        if not set(name.split("+")) & wanted:  # the pass "throughput+memory+..." runs when any of them is wanted
            return
        session.log(stage_eta_line(name, earlier, gpu_expected, time.time()))
        began = time.monotonic()
        codes = None if required else [0, 1]
        session.run(*command, success_codes=codes, env={"PYTHONUNBUFFERED": "1"})
        timings.append((name, time.monotonic() - began))
        record_stage_time(times_path, name, timings[-1][1])
        session.log(f"stage {name}: {timings[-1][1]:.0f} s")

    session.log(stage_eta_line("install", earlier, gpu_expected, time.time()))
    began = time.monotonic()
    if not _reuse_launcher_torch(session) and not wheels:
        session.install(TORCH)  # never let pip pull a multi-GB CUDA build by accident
    cuda = _has_cuda(session)
    # nox keeps the session's environment between runs; reinstalling the same wheels took ~50 s on an H100
    # host, so a rerun skips it unless pyproject.toml, the wheels folder or the GPU's presence changed.
    stamp = Path(session.virtualenv.location) / ".seqbench-installed"
    fingerprint = _install_fingerprint(wheels, cuda)
    if stamp.is_file() and stamp.read_text() == fingerprint:
        session.log("installed already from the same pyproject.toml and wheels: not reinstalling")
    else:
        if wheels:
            _install_from_folder(session, wheels)
        elif cuda:
            session.install("--no-build-isolation", "-e", ".[gpu]", env=SDIST_ENV)
        else:
            session.install("-e", ".")
        stamp.write_text(fingerprint)
    timings.append(("install", time.monotonic() - began))
    record_stage_time(times_path, "install", timings[-1][1])
    preset = preset or ("quick" if cuda else "cpu")
    recall_preset = "recall-quick" if cuda else "recall-cpu"
    if not cuda:
        session.log("No CUDA device: running the cpu presets of the reference implementations.")
    common = ["--results", results_dir, *args]
    check = ("seqbench", "check", "--results", results_dir)
    if cuda and {"kernels", "check"} <= wanted:
        # The build is nvcc on the CPU (~150 s on an H200) and the check mostly the GPU (~195 s): check what
        # loads no built extension meanwhile, then the few that do.
        session.log(stage_eta_line("kernels", earlier, gpu_expected, time.time()))
        build_log = stage_times_path(results_dir).parent / "kernels-build.log"
        build_log.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with open(build_log, "w") as log:
            venv_path = os.pathsep.join([session.bin, os.environ.get("PATH", "")])
            build = subprocess.Popen(
                [os.path.join(session.bin, "seqbench"), "kernels", "build"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PATH": venv_path, "PYTHONUNBUFFERED": "1"},
            )
            stage("check", *check, "--skip-needing-build", required=False)
            code = build.wait()
        timings.append(("kernels (beside the check)", time.monotonic() - began))
        record_stage_time(times_path, "kernels", timings[-1][1])
        session.log(f"kernels build ({build_log}):\n" + "\n".join(build_log.read_text().splitlines()[-5:]))
        if code != 0:
            session.error(f"seqbench kernels build failed (exit {code}); its log: {build_log}")
        session.run(*check, "--only-needing-build", success_codes=[0, 1], env={"PYTHONUNBUFFERED": "1"})
    else:
        if cuda:
            stage("kernels", "seqbench", "kernels", "build")
        stage("check", *check, required=False)
    # The suites in one pass (`seqbench bench`): a family's worker process runs its jobs of every suite, so
    # its library is imported and its kernels are loaded once, not once per suite.
    suites = [suite for suite in PASS_STAGES if suite in wanted]
    if suites:
        times_file = os.path.join(session.create_tmp(), "suite-times.json")
        bench_args = ["--suites", ",".join(suites), "--preset", preset, "--recall-preset", recall_preset]
        # The committed GPU baselines' job times (same job ids) estimate each suite's time left on a GPU.
        bench_args += [arg for folder in (_gpu_baselines() if cuda else []) for arg in ("--eta-from", folder)]
        stage("+".join(suites), "seqbench", "bench", *bench_args, "--times-json", times_file, *common)
        with open(times_file) as handle:
            suite_times = json.load(handle)["suites_s"]
        within = ", ".join(f"{suite} {seconds:.0f} s" for suite, seconds in suite_times.items())
        timings[-1] = (f"{timings[-1][0]} ({within})", timings[-1][1])
    if cuda:
        stage("anchors", "seqbench", "run", "throughput", "--preset", "anchors", *common)
    report_dir = report_dir or os.path.join("reports", "gpu" if cuda else "cpu")
    stage("report", "seqbench", "report", results_dir, "-o", report_dir)
    session.log("time per stage: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings))
    session.log(f"report: {os.path.abspath(os.path.join(report_dir, 'index.html'))}")


@nox.session
def report(session: nox.Session) -> None:
    """`seqbench report` over the given results (default: results/ into reports/latest/)."""
    session.install(TORCH)
    session.install("-e", ".")
    args = list(session.posargs) or ["results", "-o", os.path.join("reports", "latest")]
    session.run("seqbench", "report", *args)
