#!/usr/bin/env bash
# One command for a lent GPU, under 10 minutes: training step time per loss at 8x256x256 with bf16 on/off
# (and torch.compile on/off for MSE and MS-SSIM), syncs per step, loader throughput (folders vs cache vs
# the previous in-thread loader). Appends the output to benchmarks/RESULTS_codecs.md and regenerates
# benchmarks/RESULTS.md.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, with .venv installed
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here" >&2
  exit 2
fi
gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
log=$(mktemp)
{
  echo
  echo "### GPU check $(date -u '+%Y-%m-%d %H:%M UTC'): ${gpu:-unknown GPU}"
  echo
  echo '```'
  echo "# every registry loss that can run here, bf16 off/on, eager"
  timeout 240 $PY benchmarks/codecs_step_time.py --device cuda --batch 8 --patch 256 --bf16 both \
    --rounds 3 --steps 5 || echo "(step time: exit $?)"
  echo
  echo "# torch.compile off/on (inductor), MSE and MS-SSIM, bf16 off/on"
  timeout 240 $PY benchmarks/codecs_step_time.py --device cuda --batch 8 --patch 256 --bf16 both \
    --compile both --losses mse,ms-ssim --rounds 3 --steps 5 || echo "(compile: exit $?)"
  echo
  timeout 90 $PY benchmarks/codecs_loader.py --batches 12 --workers 0,2,4 --big 4 || echo "(loader: exit $?)"
  echo '```'
} 2>&1 | tee "$log"
cat "$log" >> benchmarks/RESULTS_codecs.md
$PY benchmarks/merge_results.py
rm -f "$log"
