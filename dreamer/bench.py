"""Learner throughput: time full `Agent.train` updates on replay-shaped random batches."""

from __future__ import annotations

import resource
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from dreamer.agent import Agent
from dreamer.config import Config


def random_batch(obs_space: gym.spaces.Dict, act_space: gym.spaces.Space, batch: int, length: int,
                 seed: int = 0, reset_at: int | None = None) -> dict[str, np.ndarray]:
    """A (B, T) batch shaped like replay output with random content. Every window starts with
    `is_first`; `reset_at` adds an episode boundary: a terminal step, then a new episode."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for key, space in obs_space.spaces.items():
        if key in ("reward", "is_first", "is_last", "is_terminal"):
            continue
        if space.dtype == np.uint8:
            data[key] = rng.integers(0, 256, (batch, length, *space.shape), dtype=np.uint8)
        else:
            data[key] = (3 * rng.normal(size=(batch, length, *space.shape))).astype(np.float32)
    if isinstance(act_space, gym.spaces.Discrete):
        data["action"] = np.eye(int(act_space.n), dtype=np.float32)[rng.integers(0, int(act_space.n), (batch, length))]
    else:
        data["action"] = rng.uniform(-1, 1, (batch, length, act_space.shape[0])).astype(np.float32)
    data["reward"] = rng.normal(size=(batch, length)).astype(np.float32)
    data["is_first"] = np.zeros((batch, length), bool)
    data["is_first"][:, 0] = True
    data["is_terminal"] = np.zeros((batch, length), bool)
    if reset_at is not None:
        data["is_first"][:, reset_at] = True
        data["is_terminal"][:, reset_at - 1] = True
    data["is_last"] = data["is_terminal"].copy()
    return data


def time_updates(cfg: Config, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space, device: torch.device,
                 updates: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of `updates` full updates after `warmup`, with the process's peak RSS."""
    agent = Agent(cfg, obs_space, act_space).to(device)
    batch = agent.to_tensors(random_batch(obs_space, act_space, cfg.replay.batch_size, cfg.replay.batch_length))
    times = []
    for i in range(warmup + updates):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        agent.train(batch)  # returns host floats: the update has finished when it returns
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {
        "seconds_per_update": statistics.median(times),
        "min_seconds": min(times),
        "max_seconds": max(times),
        "updates": updates,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        **agent.parameter_counts(),
    }
