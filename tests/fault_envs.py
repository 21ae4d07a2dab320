"""A CartPole that crashes or hangs on request, for the env-fault tests. Env var DREAMER_FAULT_DIR
names a folder; a step finding the file `crash` there (or `hang`) deletes it and kills its process
(or sleeps for an hour). Used as `gym:tests.fault_envs:Faulty-v0`."""

import os
import time
from pathlib import Path

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class FaultyCartPole(CartPoleEnv):
    def step(self, action):
        folder = Path(os.environ.get("DREAMER_FAULT_DIR", "/nonexistent"))
        for fault in ("crash", "hang"):
            try:
                (folder / fault).unlink()  # only one process claims each fault
            except FileNotFoundError:
                continue
            if fault == "crash":
                os._exit(1)
            time.sleep(3600)
        return super().step(action)


gym.register("Faulty-v0", entry_point=FaultyCartPole, max_episode_steps=500)
