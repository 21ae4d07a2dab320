#!/usr/bin/env bash
# A scaling study that fits a 2-core CPU machine: CartPole, three small custom widths
# (NAME:DETER/CNN/UNITS/LAYERS), three train ratios, two seeds, two runs at a time.
# Re-running the same command skips finished runs and continues interrupted ones.
set -euo pipefail
out=${1:-studies/cartpole-cpu}
dreamer sweep --env gym:CartPole-v1 \
  --sizes w32:32/8/32/1,w64:64/8/64/1,w128:128/16/128/1 \
  --train-ratios 32,64,128 --seeds 2 --steps 10000 \
  --out "$out" --parallel 2 --device cpu
dreamer report "$out"
