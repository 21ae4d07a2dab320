"""The `dreamer` command. Parses arguments, builds the config, and calls into the package."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import torch

from dreamer.config import ConfigError, load_config, sizes


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", help="crafter, atari:<Game>, atari100k:<Game>, gym:<id>, minerl:<task>")
    parser.add_argument("--size", help="size preset: xs, s, m, l, xl")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted config override, e.g. --set rssm.deter=512 (repeatable)")


def _config(args: argparse.Namespace, **extra):
    flags = {"env": args.env, "size": getattr(args, "size", None), **extra}
    return load_config(args.overrides, flags)


def cmd_sizes(args: argparse.Namespace) -> None:
    """Parameter counts of every size preset for an env's shapes (built on the meta device)."""
    from dreamer.agent import Agent
    from dreamer.envs import spaces

    cfg = _config(args)
    obs_space, act_space = spaces(cfg.env)
    rows = []
    for size in [cfg.size] if args.size else sizes():
        cfg = _config(args, size=size)
        with torch.device("meta"):
            counts = Agent(cfg, obs_space, act_space).parameter_counts()
        rows.append({"size": size, **counts})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    header = f"{'size':<5} {'world model':>12} {'actor':>11} {'critic':>11} {'total':>12}"
    print(f"parameters on {cfg.env} (total = world model + actor + critic, slow critic excluded)")
    print(header)
    for r in rows:
        print(f"{r['size']:<5} {r['world_model']:>12,} {r['actor']:>11,} {r['critic']:>11,} {r['total']:>12,}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreamer", description="DreamerV3 world-model RL in PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sizes", help="parameter counts of the size presets")
    _config_args(p)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_sizes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ConfigError as err:
        print(f"dreamer: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
