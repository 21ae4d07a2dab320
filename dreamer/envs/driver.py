"""Collection: step N envs with a policy, hand every step to the replay, report finished episodes."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

# policy(obs of N envs) -> (model-form actions (N, A), env actions (N,) or (N, A))
Policy = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
ACHIEVEMENT_PREFIX = "log_achievement_"


def random_policy(act_space: gym.spaces.Space, envs: int, rng: np.random.Generator) -> Policy:
    """Uniform random actions, for the prefill."""
    def policy(obs):
        if isinstance(act_space, gym.spaces.Discrete):
            index = rng.integers(0, int(act_space.n), envs)
            return np.eye(int(act_space.n), dtype=np.float32)[index], index
        action = rng.uniform(-1, 1, (envs, act_space.shape[0])).astype(np.float32)
        return action, action
    return policy


class Driver:
    """Holds the vector env and its last observation. `step(policy)` acts once in every env,
    passes `{obs, action}` to `on_step`, and returns the episodes that ended with this step."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int, on_step: Callable[[dict], None]):
        self.envs, self.on_step = envs, on_step
        self.count = envs.num_envs
        self.obs, _ = envs.reset(seed=seed)
        self.returns = np.zeros(self.count)
        self.lengths = np.zeros(self.count, np.int64)

    def step(self, policy: Policy) -> list[dict[str, float]]:
        obs = self.obs
        model_action, env_action = policy(obs)
        self.on_step({**obs, "action": model_action})
        self.returns = np.where(obs["is_first"], 0.0, self.returns + obs["reward"])
        self.lengths = np.where(obs["is_first"], 0, self.lengths + 1)
        episodes = []
        for env in np.flatnonzero(obs["is_last"]):
            episode = {"return": float(self.returns[env]), "length": int(self.lengths[env])}
            for key in obs:
                if key.startswith(ACHIEVEMENT_PREFIX):
                    episode[key[len("log_"):]] = float(obs[key][env])
            episodes.append(episode)
        self.obs, *_ = self.envs.step(env_action)
        return episodes

    def close(self) -> None:
        self.envs.close()
