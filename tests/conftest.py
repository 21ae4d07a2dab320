"""Shared test helpers: tiny configs, observation spaces and replay-shaped random batches."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamer import bench
from dreamer.config import load_config

# fp32: tests compare against hand-derived numbers and other code paths; bf16 has tests of its own.
TINY = ["dims.deter=32", "dims.units=32", "dims.cnn_depth=4", "dims.layers=1", "behavior.horizon=4",
        "run.precision=fp32", "encoder.mlp_units=32", "encoder.mlp_layers=1", "decoder.mlp_units=32",
        "decoder.mlp_layers=1"]
FLAGS = gym.spaces.Box(0, 1, (), dtype=bool)
FAST = [*TINY, "replay.batch_size=4", "replay.batch_length=16", "run.log_every=50", "run.save_every=100",
        "replay.chunk=64"]


def train_args(logdir, env="gym:CartPole-v1", steps=200, *extra):
    """`dreamer train` arguments for a tiny model that trains for seconds."""
    args = ["train", "--env", env, "--size", "xs", "--steps", str(steps), "--prefill", "50",
            "--train-ratio", "64", "--logdir", str(logdir), "--device", "cpu"]
    for override in FAST:
        args += ["--set", override]
    return args + list(extra)


def obs_space(image: bool = True, vector: int = 0) -> gym.spaces.Dict:
    spaces = {"reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32), "is_first": FLAGS,
              "is_last": FLAGS, "is_terminal": FLAGS}
    if image:
        spaces["image"] = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    if vector:
        spaces["vector"] = gym.spaces.Box(-np.inf, np.inf, (vector,), np.float32)
    return gym.spaces.Dict(spaces)


def act_space(discrete: bool = True, size: int = 5) -> gym.spaces.Space:
    return gym.spaces.Discrete(size) if discrete else gym.spaces.Box(-1, 1, (size,), np.float32)


def tiny_config(*overrides: str, env: str = "crafter", size: str = "xs"):
    return load_config([*TINY, *overrides], {"env": env, "size": size})


def random_batch(obs: gym.spaces.Dict, act: gym.spaces.Space, batch: int = 3, length: int = 6, seed: int = 0):
    """A replay-shaped batch (B, T, ...) of tensors with an episode boundary inside each window."""
    data = bench.random_batch(obs, act, batch, length, seed, reset_at=length // 2)
    return {key: torch.as_tensor(value) for key, value in data.items()}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
