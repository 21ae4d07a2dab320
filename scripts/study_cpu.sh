#!/usr/bin/env bash
# A scaling study that fits a 2-core CPU machine in under an hour: CartPole, three small custom widths
# (NAME:DETER/CNN/UNITS/LAYERS), three train ratios, two seeds, two runs at a time.
# Budget: `dreamer bench` measured 0.61 / 0.72 / 0.97 s per update for w32 / w64 / w128 with 2 threads;
# 6,000 steps at ratios 16, 32 and 64 make 545 updates per size and seed, about 40 minutes in all with
# two runs of one thread each. Re-running the same command skips finished runs and continues the rest.
set -euo pipefail
out=${1:-studies/cartpole-cpu}
dreamer sweep --env gym:CartPole-v1 \
  --sizes w32:32/8/32/1,w64:64/8/64/1,w128:128/16/128/1 \
  --train-ratios 16,32,64 --seeds 2 --steps 6000 \
  --out "$out" --parallel 2 --device cpu
dreamer report "$out"
