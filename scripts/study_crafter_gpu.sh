#!/usr/bin/env bash
# The Crafter study a GPU user launches: sizes xs..m, train ratios 64..1024, three seeds, 1M steps
# each, one run per GPU through Ray (start the cluster first, or drop --address for a local instance).
#
# Expected cost (an estimate, not measured: no GPU was at hand). Updates per run are
# 1M x ratio / 1,024 replayed steps per update: 62.5k, 250k and 1M. Counted FLOPs per update on
# Crafter shapes (BENCHMARKS.md, `dreamer bench`): xs 342, s 775, m 1,673 GFLOP. One seed of the
# 9 points is 3.7e18 FLOPs, all 27 runs 1.1e19. sheeprl's reported Crafter run (xl, ratio 512,
# 1M steps, 27 h on one V100) did 4.2e18 FLOPs by the same count, about 43 TFLOP/s; at that rate the
# study is about 70 GPU-hours, and the small sizes run below it (their matmuls are narrow), so plan
# for 70-200 GPU-hours: the ratio-1024 runs of m take about 11-30 h each, the ratio-64 runs of xs
# under 2 h. Each run also steps 1M env steps through the policy (Crafter with numba: about 730
# steps/s), which bounds the ratio-64 runs from below.
set -euo pipefail
out=${1:-studies/crafter}
address=${RAY_ADDRESS:-}
dreamer sweep --env crafter --sizes xs,s,m --train-ratios 64,256,1024 --seeds 3 --steps 1000000 \
  --out "$out" --backend ray ${address:+--address "$address"} --gpus-per-run 1 --cpus-per-run 4 --device cuda
dreamer report "$out"
