"""`dreamer eval`: play N episodes with a checkpoint's policy and summarise them as JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dreamer import checkpoint
from dreamer.agent import AgentPolicy, resolve_device
from dreamer.config import ConfigError, from_yaml
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


def evaluate(path: Path, episodes: int, device: str = "auto", out: Path | None = None,
             stop: StopRequest | None = None) -> dict[str, Any]:
    """Play `episodes` episodes in `eval` mode and summarise them (written atomically to `out`).
    A line reports every tenth of the episodes; a signal caught by `stop` (the end-of-training
    evaluation) ends the episodes and raises `Stopped`, the saved run untouched."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    agent, cfg, payload = load_agent(path, device)
    return play(agent, cfg, payload["progress"]["step"], payload["path"], episodes, out, stop)


def play(agent: AnyAgent, cfg: Any, step: int, source: str, episodes: int, out: Path | None = None,
         stop: StopRequest | None = None) -> dict[str, Any]:
    """`evaluate` with an agent at hand: the checkpoint's, or the training run's own at its end
    (no second agent, and no second set of compiled graphs, beside the first)."""
    envs = min(cfg.run.envs, episodes)
    driver = Driver(make_vector(cfg.env, cfg.environment, envs, seed=cfg.seed + EVAL_SEED_OFFSET),
                    seed=cfg.seed + EVAL_SEED_OFFSET, on_step=lambda step: None)
    policy = AgentPolicy(agent, "eval")
    finished: list[dict[str, float]] = []
    report_every = max(1, episodes // 10)
    log.info(f"evaluating the policy of step {step:,}: {episodes} episodes in eval mode")
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
