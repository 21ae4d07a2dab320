"""`atari:<Game>` and `atari100k:<Game>`: ALE through gymnasium with its Atari preprocessing.

`frameskip=1` in the ALE env and gymnasium's `AtariPreprocessing` (frame skip `repeat`, max-pooled
frames, `size` x `size` RGB or grayscale (`color`), up to `noops` random no-ops at reset); sticky actions with
probability `sticky`; the game's minimal action set or all 18 (`actions`); episodes cut at
`length` agent steps. P1's `atari` suite as the reference code ran it: sticky 0.25, all 18 actions,
no no-ops; `atari100k`: no sticky actions, the minimal set, up to 30 no-ops.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dreamer.config import ConfigError, EnvConfig
from dreamer.envs.base import Adapter
from dreamer.envs.install import require


class AtariEnv(Adapter):
    def __init__(self, task: str, cfg: EnvConfig, seed: int | None = None):
        ale_py = require("ale_py", "atari")
        require("cv2", "atari")  # AtariPreprocessing resizes with OpenCV
        gym.register_envs(ale_py)
        frames = cfg.length * cfg.repeat if cfg.length else 108_000
        try:
            env = gym.make(f"ALE/{task}-v5", frameskip=1, repeat_action_probability=cfg.sticky,
                           full_action_space=cfg.actions == "all", max_num_frames_per_episode=frames)
        except gym.error.Error as err:
            games = "e.g. Pong, Breakout, MsPacman"
            raise ConfigError(f"unknown Atari game {task!r} ({str(err).splitlines()[0]}); accepted: ALE names, {games}") from None
        self.env = gym.wrappers.AtariPreprocessing(
            env, noop_max=cfg.noops, frame_skip=cfg.repeat, screen_size=cfg.size,
            terminal_on_life_loss=False, grayscale_obs=cfg.color == "gray", grayscale_newaxis=True,
        )
        self._seed = seed
        image = gym.spaces.Box(0, 255, (cfg.size, cfg.size, 1 if cfg.color == "gray" else 3), dtype=np.uint8)
        self._init_spaces({"image": image}, gym.spaces.Discrete(int(self.env.action_space.n)))

    def __getstate__(self) -> dict:
        """Pickled for a checkpoint. ALE's env pickles only its constructor arguments, so the
        emulator state with its RNG and the no-op RNG are carried next to it. Exact without sticky
        actions; with them, the previous action a sticky step repeats is not in ALE's state, so
        the first frames after a resume may differ."""
        inner = self.env.unwrapped
        return {**self.__dict__, "_emulator": inner.ale.cloneState(include_rng=True),
                "_noop_rng": inner.np_random.bit_generator.state}

    def __setstate__(self, state: dict) -> None:
        emulator, noop_rng = state.pop("_emulator"), state.pop("_noop_rng")
        self.__dict__.update(state)
        self.env.unwrapped.ale.restoreState(emulator)
        self.env.unwrapped.np_random.bit_generator.state = noop_rng

    def _reset(self, seed):
        image, _ = self.env.reset(seed=seed)
        return {"image": image}

    def _step(self, action):
        image, reward, terminated, truncated, _ = self.env.step(int(action))
        return {"image": image}, float(reward), terminated, truncated

    def close(self):
        self.env.close()


# Random-agent and human scores of the 26 Atari100k games (the standard reference values).
REFERENCE_SCORES = {
    "Alien": (227.8, 7127.7), "Amidar": (5.8, 1719.5), "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3), "BankHeist": (14.2, 753.1), "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1), "Breakout": (1.7, 30.5), "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4), "DemonAttack": (152.1, 1971.0), "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7), "Gopher": (257.6, 2412.5), "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8), "Kangaroo": (52.0, 3035.0), "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3), "MsPacman": (307.3, 6951.6), "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3), "Qbert": (163.9, 13455.0), "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7), "UpNDown": (533.4, 11693.2),
}


def human_normalized(game: str, score: float) -> float | None:
    """(score - random) / (human - random), or None for a game without reference scores."""
    if game not in REFERENCE_SCORES:
        return None
    random_score, human_score = REFERENCE_SCORES[game]
    return (score - random_score) / (human_score - random_score)
