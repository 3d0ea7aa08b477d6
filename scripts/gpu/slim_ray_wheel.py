"""Build a slim Ray wheel (and the few dependencies a GPU image lacks) for an air-gapped GPU machine.

`--executor ray` needs only Ray core on the machine that runs it: `ray.init` starting a local instance
(GCS server, raylet, a dashboard agent in its minimal mode) and `@ray.remote` tasks. The manylinux wheel
(79 MB for ray 2.60.0) also carries Java jars, the dashboard's web client and the libraries on top of
core (Data, Serve, RLlib, Tune, Train, LLM, AIR), which such a driver never imports. This script
downloads the wheel with pip (for the target Python and platform, not this machine's), drops those
folders, rewrites RECORD without them (the kept files keep their hashes, so pip's checks pass) and
recompresses at the highest zip level; it also downloads the dependencies missing from the GPU image
(jsonschema, referencing, rpds-py, jsonschema-specifications).

    python3 scripts/gpu/slim_ray_wheel.py                         # cp312 wheels into .whl-ray/
    python3 scripts/gpu/slim_ray_wheel.py --python-version 3.11 --out /tmp/whl311   # to test here

On the GPU machine: `pip install --no-index --no-deps --target /tmp/site .whl-ray/*.whl` (what
scripts/gpu/verify_executors.sh does).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

RAY_VERSION = "2.60.0"
# Ray's required dependencies the GPU image lacks (the others: click, filelock, msgpack, packaging,
# protobuf, pyyaml, requests, and attrs for jsonschema, are there).
MISSING_DEPENDENCIES = ("jsonschema", "referencing", "rpds-py", "jsonschema-specifications")
# What a driver that starts a local instance and runs tasks never imports (checked: `ray.init` + a remote
# task + seqbench's Ray executor work without them).
DROPPED_PREFIXES = (
    "ray/jars/",  # Java workers
    "ray/dashboard/client/",  # the dashboard's web front end (the dashboard is off; its agent stays)
    "ray/data/",
    "ray/serve/",
    "ray/rllib/",
    "ray/tune/",
    "ray/train/",
    "ray/llm/",
    "ray/air/",
)
REPO_ROOT = Path(__file__).resolve().parents[2]


def pip_download(requirements: list[str], destination: Path, python_version: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(destination)]
    command += ["--python-version", python_version, "--implementation", "cp"]
    command += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64"]
    subprocess.run(command + requirements, check=True)


def slim_wheel(source: Path, target: Path) -> tuple[int, int]:
    """Copy `source` to `target` without DROPPED_PREFIXES, RECORD rewritten, deflate level 9.
    Returns (files kept, files dropped)."""
    kept = dropped = 0
    with zipfile.ZipFile(source) as wheel, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        names = wheel.namelist()
        removed = {name for name in names if name.startswith(DROPPED_PREFIXES)}
        for name in names:
            if name in removed:
                dropped += 1
                continue
            data = wheel.read(name)
            if name.endswith(".dist-info/RECORD"):
                # RECORD lists every file with its hash; pip checks the files it installs against it, so the
                # removed files' lines go and the others (unchanged bytes, unchanged hashes) stay.
                lines = data.decode().splitlines()
                data = ("\n".join(line for line in lines if line.split(",", 1)[0] not in removed) + "\n").encode()
            info = wheel.getinfo(name)
            entry = zipfile.ZipInfo(name, date_time=info.date_time)
            entry.external_attr = info.external_attr  # keep the executable bits of raylet and gcs_server
            out.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            kept += 1
    return kept, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    parser.add_argument("--ray-version", default=RAY_VERSION)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".whl-ray", help="default: .whl-ray/ in the repo")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        downloads = Path(work)
        pip_download([f"ray=={args.ray_version}", *MISSING_DEPENDENCIES], downloads, args.python_version)
        for wheel in sorted(downloads.glob("*.whl")):
            target = args.out / wheel.name
            if wheel.name.startswith("ray-"):
                kept, dropped = slim_wheel(wheel, target)
                mb = (wheel.stat().st_size / 2**20, target.stat().st_size / 2**20)
                print(f"{wheel.name}: {mb[0]:.1f} MiB -> {mb[1]:.1f} MiB ({kept} files kept, {dropped} dropped)")
            else:
                target.write_bytes(wheel.read_bytes())
                print(f"{wheel.name}: {wheel.stat().st_size / 2**20:.2f} MiB")
    total = sum(p.stat().st_size for p in args.out.glob("*.whl"))
    print(f"{args.out}: {total / 2**20:.1f} MiB in {len(list(args.out.glob('*.whl')))} wheel(s)")


if __name__ == "__main__":
    main()
