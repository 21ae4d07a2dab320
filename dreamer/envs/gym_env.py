"""`gym:<id>`: any gymnasium env with Box or Discrete spaces, as vector observations."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dreamer.config import ConfigError, EnvConfig
from dreamer.envs.base import Adapter


class GymEnv(Adapter):
    """Observations become a float32 `vector` (Discrete ones one-hot); Box actions are taken in
    [-1, 1] and rescaled to the env's bounds; `repeat` repeats each action, summing rewards."""

    def __init__(self, task: str, cfg: EnvConfig, seed: int | None = None):
        try:
            kwargs = {"max_episode_steps": cfg.length} if cfg.length else {}
            self.env = gym.make(task, **kwargs)
        except gym.error.Error as err:
            raise ConfigError(f"unknown gymnasium id {task!r}: {str(err).splitlines()[0]}") from None
        self.repeat = cfg.repeat
        inner_obs, inner_act = self.env.observation_space, self.env.action_space
        if isinstance(inner_obs, gym.spaces.Discrete):
            size = int(inner_obs.n)
        elif isinstance(inner_obs, gym.spaces.Box) and len(inner_obs.shape) == 1:
            size = inner_obs.shape[0]
        else:
            raise ConfigError(f"gym env {task!r} has observation space {inner_obs}; accepted: 1-D Box or Discrete")
        if isinstance(inner_act, gym.spaces.Box) and len(inner_act.shape) == 1:
            if not (np.isfinite(inner_act.low).all() and np.isfinite(inner_act.high).all()):
                raise ConfigError(f"gym env {task!r} has unbounded actions {inner_act}; accepted: bounded Box")
            action_space: gym.spaces.Space = gym.spaces.Box(-1.0, 1.0, inner_act.shape, dtype=np.float32)
        elif isinstance(inner_act, gym.spaces.Discrete) and inner_act.start == 0:
            action_space = gym.spaces.Discrete(int(inner_act.n))
        else:
            raise ConfigError(f"gym env {task!r} has action space {inner_act}; accepted: Discrete or 1-D Box")
        self._init_spaces({"vector": gym.spaces.Box(-np.inf, np.inf, (size,), dtype=np.float32)}, action_space)
        self._seed = seed

    def _vector(self, obs) -> dict[str, np.ndarray]:
        space = self.env.observation_space
        if isinstance(space, gym.spaces.Discrete):
            vec = np.zeros(int(space.n), np.float32)
            vec[int(obs) - space.start] = 1.0
            return {"vector": vec}
        return {"vector": np.asarray(obs, dtype=np.float32)}

    def _reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        return self._vector(obs)

    def _step(self, action):
        inner = self.env.action_space
        if isinstance(inner, gym.spaces.Box):
            action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
            action = inner.low + (action + 1.0) / 2.0 * (inner.high - inner.low)
        else:
            action = int(action)
        total, terminated, truncated = 0.0, False, False
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, _ = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return self._vector(obs), total, terminated, truncated

    def close(self):
        self.env.close()
