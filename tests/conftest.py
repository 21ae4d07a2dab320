"""Shared test helpers: tiny configs, observation spaces and replay-shaped random batches."""

import os

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


def with_latents(batch: dict, deter: int, stoch: int, classes: int, seed: int = 0) -> dict:
    """`batch` plus stored latents as the 2024 replay keeps them: h (B, T, D), class indices (B, T, S)."""
    gen = torch.Generator().manual_seed(seed)
    B, T = batch["is_first"].shape
    return {**batch, "deter": torch.randn(B, T, deter, generator=gen),
            "stoch": torch.randint(0, classes, (B, T, stoch), generator=gen, dtype=torch.uint8)}


TINY_2024 = ["recipe=2024", "size=size1m", "v2024.dims.units=16", "v2024.dims.deter=32", "v2024.dims.classes=4",
             "v2024.dims.depth=4", "v2024.coder_layers=1", "v2024.actor_layers=1", "v2024.critic_layers=1",
             "behavior.horizon=4", "run.precision=fp32"]


@pytest.fixture(autouse=True, scope="session")
def _checkpoint_key(tmp_path_factory):
    """The key that signs the envs' pickles in checkpoints: the tests' own, not the user's."""
    os.environ["DREAMER_KEY_FILE"] = str(tmp_path_factory.mktemp("key") / "checkpoint-key")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
