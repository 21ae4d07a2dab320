#!/usr/bin/env bash
# A scaling study that fits a 2-core CPU machine in under an hour: CartPole, three small custom widths
# (NAME:DETER/CNN/UNITS/LAYERS), three train ratios, two seeds, two runs at a time (one thread each).
# Batches of 16 x 16 steps instead of 16 x 64: learning on CartPole is limited by the number of updates
# (it needs several hundred), and a 16 x 16 update costs 0.26-0.35 s on one thread at these widths, so
# 6,000 steps (1,024 of them random prefill) at ratios 16, 32 and 64 give 311, 622 and 1,244 updates per
# run. Measured here: 59 minutes for all 18 runs (BENCHMARKS.md has the results).
# Re-running the same command skips finished runs and continues the rest.
set -euo pipefail
out=${1:-studies/cartpole-cpu}
dreamer sweep --env gym:CartPole-v1 \
  --sizes w32:32/8/32/1,w64:64/8/64/1,w128:128/16/128/1 \
  --train-ratios 16,32,64 --seeds 2 --steps 6000 --set replay.batch_length=16 \
  --out "$out" --parallel 2 --device cpu
dreamer report "$out"
