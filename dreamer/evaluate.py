"""`dreamer eval`: play N episodes with a checkpoint's policy and summarise them as JSON."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamer import checkpoint
from dreamer.agent import AgentPolicy, resolve_device
from dreamer.config import ConfigError, from_yaml
from dreamer.console import counted
from dreamer.envs import make_vector, spaces, split_name
from dreamer.envs.atari import human_normalized
from dreamer.envs.crafter_env import crafter_score, success_rates
from dreamer.envs.driver import Driver
from dreamer.recipes import AnyAgent, build_agent
from dreamer.stopping import Stopped, StopRequest

log = logging.getLogger("dreamer")

EVAL_SEED_OFFSET = 10**6  # evaluation episodes use other env seeds than training


def load_agent(path: Path, device: str = "auto") -> tuple[AnyAgent, Any, dict[str, Any]]:
    """(agent with the checkpoint's weights, its config, the checkpoint payload)."""
    torch_device = resolve_device(device)
    ckpt_path, payload = checkpoint.resolve(path, map_location=torch_device)
    cfg = from_yaml(payload["config"])
    obs_space, act_space = spaces(cfg.env, cfg.environment)
    agent = build_agent(cfg, obs_space, act_space, torch_device)
    try:
        agent.load_state_dict(payload["agent"])
    except RuntimeError as err:
        raise checkpoint.CheckpointError(f"checkpoint {ckpt_path} does not fit its own config: {str(err).splitlines()[0]}") from None
    agent.eval()
    payload["path"] = str(ckpt_path)
    return agent, cfg, payload


def summarize(env: str, episodes: list[dict[str, float]]) -> dict[str, Any]:
    returns = np.array([ep["return"] for ep in episodes])
    out: dict[str, Any] = {
        "episodes": len(episodes),
        "returns": returns.tolist(),
        "lengths": [ep["length"] for ep in episodes],
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
    }
    suite, task = split_name(env)
    if suite == "crafter":
        rates = success_rates(episodes)
        out["success_rates"] = rates
        out["score"] = crafter_score(np.array(list(rates.values())))
    elif suite in ("atari", "atari100k"):
        out["human_normalized"] = human_normalized(task, out["mean_return"])
    return out


def check_output(out: Path) -> None:
    """Refuse an `--out` that cannot take the JSON, before anything is loaded or played: a path that
    is a folder, does not end in .json, or lies in a folder that is missing or not writable."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; accepted: a .json file path, e.g. {out / 'eval.json'}")
    if out.suffix.lower() != ".json":
        raise ConfigError(f"--out {out} does not end in .json; accepted: a .json file path")
    folder = out.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"--out {out}: {folder} {what}; accepted: a .json file in an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: folder {folder} is not writable; accepted: a .json file in a writable folder")


def evaluate(path: Path, episodes: int, device: str = "auto", out: Path | None = None,
             stop: StopRequest | None = None, seed: int = 0) -> dict[str, Any]:
    """Play `episodes` episodes in `eval` mode and summarise them (written atomically to `out`).
    A line reports every tenth of the episodes; a signal caught by `stop` (the end-of-training
    evaluation) ends the episodes and raises `Stopped`, the saved run untouched. `seed` seeds the
    envs and the policy's sampling: the same checkpoint and seed play the same episodes."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    if out is not None:
        check_output(out)
    agent, cfg, payload = load_agent(path, device)
    return play(agent, cfg, payload["progress"]["step"], payload["path"], episodes, out, stop, seed)


def play(agent: AnyAgent, cfg: Any, step: int, source: str, episodes: int, out: Path | None = None,
         stop: StopRequest | None = None, seed: int = 0) -> dict[str, Any]:
    """`evaluate` with an agent at hand: the checkpoint's, or the training run's own at its end
    (no second agent, and no second set of compiled graphs, beside the first). The envs' seeds
    start at the run's seed + `EVAL_SEED_OFFSET` + `seed`, and torch's generators (the policy's
    sampling) are seeded with that number too."""
    envs = min(cfg.run.envs, episodes)
    eval_seed = cfg.seed + EVAL_SEED_OFFSET + seed
    torch.manual_seed(eval_seed)
    driver = Driver(make_vector(cfg.env, cfg.environment, envs, seed=eval_seed), seed=eval_seed,
                    on_step=lambda step: None)
    policy = AgentPolicy(agent, "eval")
    finished: list[dict[str, float]] = []
    report_every = max(1, episodes // 10)
    log.info(f"evaluating the policy of step {step:,}: {counted(episodes, 'episode')} in eval mode")
    try:
        while len(finished) < episodes:
            if stop is not None and stop.signum is not None:  # a signal arrived
                raise Stopped(stop.signum, step)
            before = len(finished)
            finished += driver.step(policy)
            if len(finished) // report_every > before // report_every:
                returns = [ep["return"] for ep in finished[:episodes]]
                log.info(f"evaluation: {len(returns)}/{episodes} episodes, mean return {np.mean(returns):.2f}")
    finally:
        driver.close()
    result = {"checkpoint": source, "env": cfg.env, "size": cfg.size,
              "step": step, **summarize(cfg.env, finished[:episodes])}
    if out is not None:
        checkpoint.atomic_write(out, lambda f: f.write(json.dumps(result, indent=2).encode()))
    return result
