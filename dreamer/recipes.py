"""The one place that maps `recipe` to its agent: 2023 = P1 (arXiv 2301.04104v1, `dreamer.agent`),
2024 = v2 / Nature (`dreamer.v2024`). Both share the loop, replay, logging, checkpoints and data parallelism.

What differs for the loop is asked of the agent, not of the recipe name:
    `stored_keys()`        extra per-step values the replay keeps (the 2024 latents; none for P1)
    `replay_context`       steps before the trained window each replay batch carries (0 or 1)
    `online_queue`         whether fresh non-overlapping windows are trained on first
    `min_replay_windows`   replay windows needed before the first update
"""

from __future__ import annotations

import gymnasium as gym
import torch

from dreamer.agent import Agent
from dreamer.config import Config
from dreamer.v2024.agent import Agent2024

AnyAgent = Agent | Agent2024
AGENTS: dict[str, type[AnyAgent]] = {"2023": Agent, "2024": Agent2024}


def build_agent(cfg: Config, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space,
                device: torch.device | None = None) -> AnyAgent:
    """The agent of `cfg.recipe`; with a `device`, moved there and the process's backend switches
    (TF32, cuDNN) set for its precision."""
    agent = AGENTS[cfg.recipe](cfg, obs_space, act_space)
    if device is not None:
        agent = agent.to(device)
        agent.configure_backend()
    return agent
