#!/usr/bin/env bash
# Verify the executors on a machine with 2 GPUs: the `quick` throughput preset on one GPU, then on both
# with `--executor local` and with `--executor ray`; wall time of each, rows by status and by GPU index.
#
#     source scripts/gpu/setup.sh                 # the kernel libraries (.whl/), seqbench editable
#     bash scripts/gpu/verify_executors.sh        # Ray from .whl-ray/ (scripts/gpu/slim_ray_wheel.py)
#
# Environment (all optional):
#     SEQBENCH_FAMILIES="attention mamba2"   only these families (each becomes --family X): shorter
#     SEQBENCH_RUN_ARGS="--mode fwd"         more options for every `seqbench run throughput`
#     PRESET=quick                           the throughput preset
#     STAGES="warm single local ray"         which runs, in order (default). warm: an untimed run on both
#                                            GPUs that fills the Triton compile/autotune caches, so the
#                                            timed runs compare scheduling, not who compiled first
#     STAGE_TIMEOUT_S=540                    each run gets SIGINT (= Ctrl-C: it writes what finished) after this
#     WORK=/tmp/verify_executors             results of each stage; the summary covers every stage found there,
#                                            so stages may run in separate commands (STAGES=warm, then the rest)
#     OUT=/some/dir                          summary JSON (verify_executors.json) and each run's Parquet there
#
# How "uses both GPUs" shows: every row carries `gpu_index` (the physical GPU its worker or Ray task was
# pinned to) and `executor`; the summary counts jobs per GPU index, and an nvidia-smi sampler (1 s) gives
# each GPU's share of busy samples during each run. Wall times are printed against the single-GPU run.
set -u
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/verify_executors}
STAGES=${STAGES:-warm single local ray}
PRESET=${PRESET:-quick}
STAGE_TIMEOUT_S=${STAGE_TIMEOUT_S:-540}
mkdir -p "$WORK"

export RAY_USAGE_STATS_ENABLED=0  # no network here: do not try to report usage
echo "== GPUs"
nvidia-smi -L

# Ray: the slim wheels carried in .whl-ray/, unless this Python already has Ray.
if ! python3 -c "import ray" 2>/dev/null; then
  if ls .whl-ray/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site-ray .whl-ray/*.whl \
      && export PYTHONPATH=/tmp/site-ray${PYTHONPATH:+:$PYTHONPATH}  # Ray's own processes inherit it
  fi
fi
python3 -c "import ray; print('ray', ray.__version__, 'from', ray.__file__)" 2>&1 | tail -1

FAMILY_ARGS=()
for family in ${SEQBENCH_FAMILIES//,/ }; do FAMILY_ARGS+=(--family "$family"); done
# shellcheck disable=SC2206
EXTRA_ARGS=(${SEQBENCH_RUN_ARGS:-})

run_stage() {  # name, "VAR=value ..." for the environment (or ""), then seqbench options
  local name=$1 environment=$2
  shift 2
  local results="$WORK/$name"
  rm -rf "$results"
  mkdir -p "$results"
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 1000 \
    > "$WORK/$name.smi.csv" 2>/dev/null &
  local sampler=$!
  local began ended code
  began=$(date +%s.%N)
  echo "== $name: $environment seqbench run throughput --preset $PRESET $* ${FAMILY_ARGS[*]} ${EXTRA_ARGS[*]}"
  # shellcheck disable=SC2086
  env $environment timeout -s INT -k 60 "$STAGE_TIMEOUT_S" python3 -m harness.cli run throughput --preset "$PRESET" \
    --results "$results" "$@" "${FAMILY_ARGS[@]}" "${EXTRA_ARGS[@]}" 2>&1 | grep -v '^\[[0-9]*/[0-9]*\] ok '
  code=${PIPESTATUS[0]}
  ended=$(date +%s.%N)
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
  python3 - "$name" "$results" "$began" "$ended" "$code" "$WORK/$name.smi.csv" <<'EOF'
import json, sys
from collections import Counter
from harness import results

name, directory, began, ended, code, smi = sys.argv[1:]
summary = {"stage": name, "wall_s": round(float(ended) - float(began), 1), "exit_code": int(code)}
try:
    frame = results.read_results(directory)
    jobs = frame.sort_values("status").drop_duplicates("job_id", keep="last")  # one status per job
    summary |= {
        "jobs": int(frame.job_id.nunique()),
        "rows": len(frame),
        "jobs_by_status": dict(Counter(jobs.status)),
        "jobs_by_gpu_index": {str(k): int(v) for k, v in Counter(jobs.gpu_index.astype(str)).items()},
        "executor": sorted(set(frame.executor.dropna())),
        "job_status": dict(zip(jobs.job_id, jobs.status)),
    }
except Exception as exc:
    summary["error"] = f"{type(exc).__name__}: {exc}"
busy, total = Counter(), Counter()
try:
    for line in open(smi):
        index, utilization, _ = (part.strip() for part in line.split(","))
        total[index] += 1
        busy[index] += int(utilization) > 0
except (OSError, ValueError):
    pass
summary["gpu_busy_fraction"] = {i: round(busy[i] / total[i], 2) for i in sorted(total)}
json.dump(summary, open(f"{directory}.json", "w"))
shown = {k: v for k, v in summary.items() if k != "job_status"}
print(f"-- {name}: {json.dumps(shown)}")
EOF
}

for stage in $STAGES; do
  case $stage in
    warm) run_stage warm "" --executor local ;;
    single) run_stage single "CUDA_VISIBLE_DEVICES=0" --executor local ;;
    local) run_stage local "" --executor local ;;
    ray) run_stage ray "" --executor ray ;;
    *) echo "unknown stage $stage (known: warm single local ray)" ;;
  esac
done

echo "== summary"
python3 - "$WORK" "${OUT:-}" <<'EOF'
import json, shutil, sys
from pathlib import Path

# Every stage run so far on this machine (an earlier call's too: stages can run in separate commands).
work, out = Path(sys.argv[1]), sys.argv[2]
stages = ("warm", "single", "local", "ray")
found = {s: json.loads((work / f"{s}.json").read_text()) for s in stages if (work / f"{s}.json").exists()}
single = found.get("single", {}).get("wall_s")
print(f"{'stage':<8} {'wall s':>8} {'vs single':>9} {'jobs':>5}  by status / by gpu_index / GPU busy fraction")
for name, s in found.items():
    ratio = f"{single / s['wall_s']:.2f}x" if single and s.get("wall_s") else ""
    print(f"{name:<8} {s.get('wall_s', 0):>8.1f} {ratio:>9} {s.get('jobs', 0):>5}  "
          f"{s.get('jobs_by_status')} / {s.get('jobs_by_gpu_index')} / {s.get('gpu_busy_fraction')}")
# Same preset, same jobs: the job ids and their statuses should match whichever executor ran them.
reference = found.get("single", {}).get("job_status")
for name, s in found.items():
    if reference is None or name in ("single", "warm") or "job_status" not in s:
        continue
    same_ids = set(s["job_status"]) == set(reference)
    differ = sorted(j for j in reference if s["job_status"].get(j) != reference[j])
    print(f"{name} vs single: same job ids {same_ids}; {len(differ)} job(s) with another status")
if out:
    Path(out).mkdir(parents=True, exist_ok=True)
    summary = {name: {k: v for k, v in s.items() if k != "job_status"} for name, s in found.items()}
    (Path(out) / "verify_executors.json").write_text(json.dumps(summary, indent=1))
    for name in found:  # the rows themselves (Parquet, small) for a closer look
        if (work / name).is_dir():
            shutil.copytree(work / name, Path(out) / "results" / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.log"))
    print(f"summary: {out}/verify_executors.json")
EOF
