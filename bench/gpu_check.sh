#!/usr/bin/env bash
# Every GPU check and benchmark in one run (issue 7), for the device tool's machine:
#   1. the CuPy tests (numpy and CuPy agree to 1e-6 relative; on-device loop = host loop)
#   2. bench/objective_overhead.py on the GPU: 4M x 32, 200 rounds, depth 6
#   3. the nightly job's focal XGBoost, CPU vs GPU, same data and parameters
#   4. where an on-device round's time goes (bench/gpu_round_profile.py)
# Figures go to $OUT (the device tool brings them back) and are meant to be committed
# under bench/results/.
#
# Prepare here, once, in the repository root (the GPU machine cannot reach PyPI; its image
# has numpy, pandas, pyarrow, scipy, scikit-learn, numba, matplotlib, tqdm, PyYAML, CuPy):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl xgboost==3.4.1 \
#     lightgbm==4.7.0 optuna==5.0.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.7.0 \
#     typing-inspection typing-extensions orjson==3.13.0 colorlog==6.12.0
# (about 62 MiB: under the device tool's 64 MiB with the tree), then run it with
# carry [".whl"]: bash bench/gpu_check.sh
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import cupy, xgboost; print('cupy', cupy.__version__, 'xgboost', xgboost.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m pytest tests/test_objectives/test_gpu.py -q -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.txt"
python3 bench/objective_overhead.py --device cuda --repeats 3 --json "$OUT/objective_overhead_gpu.json" 2>&1 \
  | tee "$OUT/objective_overhead_gpu.txt"
python3 bench/device_compare.py --days 120 --json "$OUT/device_compare.json" 2>&1 | tee "$OUT/device_compare.txt"
python3 bench/gpu_round_profile.py --json "$OUT/round_profile.json" 2>&1 | grep -v Warning | tee "$OUT/round_profile.txt"
