#!/usr/bin/env python3
"""Break each learning signal of the P1 agent on purpose and see whether the learning smoke test
(`tests/test_learning.py`) notices: the table of BENCHMARKS.md's section on that test.

    python scripts/learning_breakage.py [--variants unbroken actor-negated ...] [--seed 0] [--out FILE.json]

Each variant runs in its own process on one thread: the process patches one function of the
package (nothing is edited on disk), runs the test's `learn()` and judges it with the test's own
criteria (`failures`). The table gives what the agent predicts after training and whether the test
would pass; `--out` keeps the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _actor_negated() -> None:
    """The policy-gradient objective negated: the actor climbs away from the advantage."""
    from dreamer import behavior
    terms = behavior.actor_loss_terms
    behavior.actor_loss_terms = lambda objective, entropy, weight, eta: terms(-objective, entropy, weight, eta)


def _critic_zeroed() -> None:
    """The critic loss multiplied by 0: the critic never learns a value."""
    from dreamer import behavior
    loss = behavior.critic_loss
    behavior.critic_loss = lambda *args, **kwargs: loss(*args, **kwargs) * 0.0


def _scale_swapped() -> None:
    """S = low - high: the percentiles swapped and the floor lost, so S is negative (or zero)."""
    from dreamer.behavior import ReturnNorm
    ReturnNorm.scale = lambda self: self.low - self.high


def _scale_times(factor: float):
    def patch() -> None:
        """S multiplied by `factor`: the advantage shrinks against the entropy bonus."""
        from dreamer.behavior import ReturnNorm
        scale = ReturnNorm.scale
        ReturnNorm.scale = lambda self: scale(self) * factor
    return patch


def _world_model_frozen() -> None:
    """The world model's optimiser computes its gradient but never steps."""
    from dreamer.agent import Agent
    optimizers = Agent.optimizers

    def frozen(self):
        optims = optimizers(self)
        optims["world_model"].adam.step = lambda: None
        return optims
    Agent.optimizers = frozen


VARIANTS = {
    "unbroken": ("unbroken", None),
    "actor-negated": ("actor: policy-gradient objective negated", _actor_negated),
    "critic-zeroed": ("critic: loss multiplied by 0", _critic_zeroed),
    "scale-swapped": ("return normalisation: S negated (percentiles swapped, floor lost)", _scale_swapped),
    "scale-1e5": ("return normalisation: S x 1e5 (the entropy bonus dominates)", _scale_times(1e5)),
    "scale-1000": ("return normalisation: S x 1000", _scale_times(1e3)),
    "world-model-frozen": ("world model: no optimiser step", _world_model_frozen),
}


def run_variant(name: str, seed: int) -> dict:
    """In this process: apply the variant's patch, learn, judge (call it in a fresh process)."""
    import torch

    sys.path.insert(0, str(ROOT))
    torch.set_num_threads(1)
    patch = VARIANTS[name][1]
    if patch is not None:
        patch()
    from tests import test_learning

    got = test_learning.learn(seed=seed)
    return {"variant": name, "seed": seed, **got, "failures": test_learning.failures(got)}


def table(results: list[dict]) -> str:
    lines = ["| variant | reward after a=0 / a=1 | value | paying action | test |",
             "|---|---:|---:|---:|---|"]
    for r in results:
        verdict = "fails" if r["failures"] else "passes"
        lines.append(f"| {VARIANTS[r['variant']][0]} | {r['reward_a0']:.2f} / {r['reward_a1']:.2f} | "
                     f"{r['value']:.2f} | {r['paying_action']:.2f} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write every variant's numbers as JSON")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_variant(args.child, args.seed)))
        return
    results = []
    for name in args.variants:
        done = subprocess.run([sys.executable, __file__, "--child", name, "--seed", str(args.seed)],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode:
            sys.exit(f"learning_breakage: variant {name} crashed:\n{done.stderr.strip()}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: {'fails' if results[-1]['failures'] else 'passes'}", file=sys.stderr, flush=True)
    print(table(results))
    if args.out:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
