"""`crafter`: Crafter with its native 10,000-step episodes and the 22 achievements."""

from __future__ import annotations

import numpy as np

import gymnasium as gym

from dreamer.config import EnvConfig
from dreamer.envs.base import Adapter
from dreamer.envs.install import require

ACHIEVEMENTS = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling", "collect_stone",
    "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant", "make_iron_pickaxe",
    "make_iron_sword", "make_stone_pickaxe", "make_stone_sword", "make_wood_pickaxe", "make_wood_sword",
    "place_furnace", "place_plant", "place_stone", "place_table", "wake_up",
)
ACTIONS = 17


def crafter_score(success_rates_percent: np.ndarray) -> float:
    """Crafter score: exp(mean_i ln(1 + s_i)) - 1 over the achievements' success rates in percent."""
    rates = np.asarray(success_rates_percent, dtype=np.float64)
    return float(np.exp(np.mean(np.log1p(rates))) - 1.0)


def success_rates(episodes: list[dict[str, float]]) -> dict[str, float]:
    """Per achievement, the percentage of episodes that unlocked it (keys `achievement_<name>`)."""
    names = sorted(k for k in episodes[0] if k.startswith("achievement_")) if episodes else []
    return {k[len("achievement_"):]: 100.0 * float(np.mean([ep[k] > 0 for ep in episodes])) for k in names}


class CrafterEnv(Adapter):
    """`image` (size, size, 3) uint8; `log_achievement_<name>` counts of the current episode.
    Death is terminal; reaching `length` steps (10,000 by default) is a truncation."""

    def __init__(self, task: str, cfg: EnvConfig, seed: int | None = None):
        require("crafter", "crafter")
        self.size, self.length = cfg.size, cfg.length or 10000
        self._seed = seed
        self.env = self._make(seed)
        inputs: dict[str, gym.spaces.Space] = {"image": gym.spaces.Box(0, 255, (cfg.size, cfg.size, 3), dtype=np.uint8)}
        for name in ACHIEVEMENTS:
            inputs[f"log_achievement_{name}"] = gym.spaces.Box(0, np.iinfo(np.int32).max, (), dtype=np.int32)
        self._init_spaces(inputs, gym.spaces.Discrete(ACTIONS))

    def _make(self, seed: int | None):
        from dreamer.envs.crafter_ordered import OrderedCrafter

        return OrderedCrafter(size=(self.size, self.size), length=self.length, seed=seed)

    def _inputs(self, image: np.ndarray, achievements: dict[str, int]) -> dict[str, np.ndarray]:
        out = {"image": np.asarray(image, dtype=np.uint8)}
        for name in ACHIEVEMENTS:
            out[f"log_achievement_{name}"] = np.int32(achievements.get(name, 0))
        return out

    def _reset(self, seed):
        if seed is not None:  # crafter seeds its worlds at construction
            self.env = self._make(seed)
        return self._inputs(self.env.reset(), {})

    def _step(self, action):
        image, reward, done, info = self.env.step(int(action))
        terminated = bool(info["discount"] == 0)
        return self._inputs(image, info["achievements"]), float(reward), terminated, bool(done and not terminated)
