#!/usr/bin/env bash
# The Crafter study a GPU user launches: sizes xs..m, train ratios 64..1024, three seeds, 1M steps
# each, one run per GPU through Ray (start the cluster first, or drop --address for a local instance).
set -euo pipefail
out=${1:-studies/crafter}
address=${RAY_ADDRESS:-}
dreamer sweep --env crafter --sizes xs,s,m --train-ratios 64,256,1024 --seeds 3 --steps 1000000 \
  --out "$out" --backend ray ${address:+--address "$address"} --gpus-per-run 1 --cpus-per-run 4 --device cuda
dreamer report "$out"
