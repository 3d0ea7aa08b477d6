# Source this on a CUDA machine without network, from the repository root, with the wheels and sdists
# of the kernel libraries in .whl/ (see README: "Air-gapped GPU nodes"):
#     source scripts/gpu/setup.sh
# It installs them (Python code only for mamba-ssm: FORCE_BUILD stops its setup.py from downloading a
# prebuilt wheel, SKIP_CUDA_BUILD from compiling) under /tmp/site, then seqbench itself in editable mode.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
for sdist in .whl/mamba_ssm-*.tar.gz; do
  [ -e "$sdist" ] && MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE python3 -m pip install -q --no-index --no-deps --no-build-isolation \
    --no-compile --target /tmp/site "$sdist"
done
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export PATH=/tmp/site/bin:$PATH
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null
set +e
