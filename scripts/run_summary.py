"""Summarise a run: collection and learner throughput, and when each achievement was first unlocked.

    python scripts/run_summary.py runs/crafter-xs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dreamer.logging import read_jsonl


def summary(logdir: Path) -> dict:
    metrics = read_jsonl(logdir / "metrics.jsonl")
    episodes = read_jsonl(logdir / "episodes.jsonl")

    def median(key):
        values = [row[key] for row in metrics if key in row]
        return float(np.median(values)) if values else None

    first: dict[str, int] = {}
    for ep in episodes:
        for key, count in ep.items():
            name = key[len("achievement_"):]
            if key.startswith("achievement_") and count > 0 and name not in first:
                first[name] = ep["step"]
    return {
        "steps": metrics[-1]["step"] if metrics else 0,
        "updates": metrics[-1].get("perf/updates") if metrics else 0,
        "env_steps_per_second": median("perf/env_steps_per_second"),
        "updates_per_second": median("perf/updates_per_second"),
        "episodes": len(episodes),
        "returns": [round(ep["return"], 2) for ep in episodes],
        "lengths": [ep["length"] for ep in episodes],
        "first_unlocked_at_step": dict(sorted(first.items(), key=lambda kv: kv[1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path)
    print(json.dumps(summary(parser.parse_args().logdir), indent=2))


if __name__ == "__main__":
    main()
