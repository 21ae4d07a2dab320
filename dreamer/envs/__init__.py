"""Environment suites. `spaces(env)` gives the observation and action spaces of an env name
without training anything; the full adapters live in one module per suite."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dreamer.config import ConfigError, suite_of

CRAFTER_ACTIONS = 17
CRAFTER_IMAGE = (64, 64, 3)


def _flags() -> dict[str, gym.spaces.Space]:
    flag = gym.spaces.Box(0, 1, (), dtype=bool)
    return {"reward": gym.spaces.Box(-np.inf, np.inf, (), dtype=np.float32),
            "is_first": flag, "is_last": flag, "is_terminal": flag}


def spaces(env: str) -> tuple[gym.spaces.Dict, gym.spaces.Space]:
    """(observation dict space, action space) of an env name such as `crafter` or `gym:CartPole-v1`."""
    suite = suite_of(env)
    if suite == "crafter":
        obs = {"image": gym.spaces.Box(0, 255, CRAFTER_IMAGE, dtype=np.uint8)}
        return gym.spaces.Dict({**obs, **_flags()}), gym.spaces.Discrete(CRAFTER_ACTIONS)
    if suite == "gym":
        name = env.split(":", 1)[1] if ":" in env else ""
        try:
            inner = gym.make(name)
        except Exception as err:  # gymnasium raises several error types for unknown ids
            raise ConfigError(f"unknown gymnasium id {name!r} in env={env!r}: {str(err).splitlines()[0]}") from None
        try:
            if not isinstance(inner.observation_space, gym.spaces.Box) or len(inner.observation_space.shape) != 1:
                raise ConfigError(f"gym env {name!r} has observation space {inner.observation_space}; accepted: 1-D Box")
            vector = gym.spaces.Box(-np.inf, np.inf, inner.observation_space.shape, dtype=np.float32)
            act = inner.action_space
            if isinstance(act, gym.spaces.Box):
                act = gym.spaces.Box(-1.0, 1.0, act.shape, dtype=np.float32)
            elif not isinstance(act, gym.spaces.Discrete):
                raise ConfigError(f"gym env {name!r} has action space {act}; accepted: Discrete or Box")
            return gym.spaces.Dict({"vector": vector, **_flags()}), act
        finally:
            inner.close()
    raise ConfigError(f"env suite {suite!r} is not available in this version; accepted: crafter, gym:<id>")
