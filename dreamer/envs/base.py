"""The observation-dict interface every env adapter speaks (design section 3).

An adapter is a gymnasium Env whose observations are dicts holding the model inputs (`image`
uint8 (H, W, C) and/or `vector` float32) plus `reward`, `is_first`, `is_last` and `is_terminal`.
`is_last` without `is_terminal` is a truncation: values bootstrap through it. Keys that start with
`log_` carry statistics for the logs and are not model inputs. Under gymnasium's vector API with
next-step autoreset, the step after `is_last` returns the reset observation with `is_first`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

FLAG_KEYS = ("is_first", "is_last", "is_terminal")


def flag_spaces() -> dict[str, gym.spaces.Space]:
    flag = gym.spaces.Box(0, 1, (), dtype=bool)
    return {"reward": gym.spaces.Box(-np.inf, np.inf, (), dtype=np.float32),
            **{key: flag for key in FLAG_KEYS}}


class Adapter(gym.Env):
    """Base class: subclasses implement `_reset(seed) -> inputs` and
    `_step(action) -> (inputs, reward, terminated, truncated)`, set the two spaces, and may store
    a construction seed in `_seed` for the first reset that names none."""

    metadata: dict[str, Any] = {"render_modes": []}
    inputs_space: gym.spaces.Dict  # model inputs (+ `log_` keys), without reward and flags
    _seed: int | None = None  # the construction seed, for the first reset

    def _init_spaces(self, inputs: dict[str, gym.spaces.Space], action_space: gym.spaces.Space) -> None:
        self.inputs_space = gym.spaces.Dict(inputs)
        self.observation_space = gym.spaces.Dict({**inputs, **flag_spaces()})
        self.action_space = action_space

    def _reset(self, seed: int | None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool]:
        raise NotImplementedError

    def _obs(self, inputs: dict, reward: float, first: bool, last: bool, terminal: bool) -> dict:
        return {**inputs, "reward": np.float32(reward), "is_first": np.bool_(first),
                "is_last": np.bool_(last), "is_terminal": np.bool_(terminal)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None:  # the seed given at construction applies to the first reset only
            seed, self._seed = self._seed, None
        super().reset(seed=seed)
        return self._obs(self._reset(seed), 0.0, True, False, False), {}

    def step(self, action):
        inputs, reward, terminated, truncated = self._step(action)
        obs = self._obs(inputs, reward, False, terminated or truncated, terminated)
        return obs, float(reward), bool(terminated), bool(truncated), {}
