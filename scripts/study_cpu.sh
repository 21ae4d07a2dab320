#!/usr/bin/env bash
# The CPU scaling study (BENCHMARKS.md, "A scaling study on this CPU"): does the return at a fixed
# number of env steps rise with model size and with train ratio, and what does intrinsic
# performance give for the compute-optimal size exponent?
#
# CartPole-v1, three widths 16 apart (NAME:DETER/CNN/UNITS/LAYERS; the vector encoder and decoder
# take the same units and layers), train ratios 16, 32 and 64, two seeds, 6,000 env steps of which
# 1,024 are random prefill. To learn within hundreds of updates instead of thousands, every run uses
# the same fast settings: 8 x 8 latents, 16 x 16 batches and learning rates 30x (world model) and
# 33x (actor, critic) the paper's. At ratios 16, 32 and 64 a run makes 311, 622 and 1,244 updates.
# Two runs at a time, one thread each: 34 minutes for all 18 runs here (BENCHMARKS.md has the results).
# At actor lr 1e-3 five of the six w256 runs collapse to a one-sided policy; with
# --set optim.actor.lr=3e-4 w256 beats w64 at ratio 64 (BENCHMARKS.md, the follow-up).
# Re-running the same command skips finished runs and continues the rest.
set -euo pipefail
out=${1:-studies/cartpole-cpu}
dreamer sweep --env gym:CartPole-v1 \
  --sizes w16:16/8/16/1,w64:64/8/64/1,w256:256/8/256/1 \
  --train-ratios 16,32,64 --seeds 2 --steps 6000 \
  --set replay.batch_length=16 --set rssm.stoch=8 --set rssm.classes=8 \
  --set optim.world_model.lr=3e-3 --set optim.actor.lr=1e-3 --set optim.critic.lr=1e-3 \
  --out "$out" --parallel 2 --device cpu
dreamer report "$out"
