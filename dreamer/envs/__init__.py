"""Environment suites behind one name scheme: `crafter`, `atari:<Game>`, `atari100k:<Game>`,
`gym:<id>`, `minerl:<task>`, `dmc:<domain>_<task>`, `dmc_vision:<domain>_<task>`. `make_env` builds
one adapter, `make_vector` N of them (in subprocesses when N > 1), `spaces` reads an env's
observation and action spaces."""

from __future__ import annotations

from functools import partial
from typing import Callable

import gymnasium as gym

from dreamer.config import ConfigError, EnvConfig, suite_of
from dreamer.envs.base import Adapter

INSTALL = {
    "crafter": "pip install 'dreamer-rl[crafter]'",
    "atari": "pip install 'dreamer-rl[atari]'",
    "atari100k": "pip install 'dreamer-rl[atari]'",
    "gym": "included",
    "minerl": "pip install 'dreamer-rl[minerl]' (needs Java 8; the Docker image docker/Dockerfile.minerl has it)",
    "dmc": "pip install 'dreamer-rl[dmc]'",
    "dmc_vision": "pip install 'dreamer-rl[dmc]' (and a headless GL: Debian libegl1 libegl-mesa0 libgl1-mesa-dri)",
}


def _constructor(suite: str) -> Callable[..., Adapter]:
    if suite == "crafter":
        from dreamer.envs.crafter_env import CrafterEnv
        return CrafterEnv
    if suite in ("atari", "atari100k"):
        from dreamer.envs.atari import AtariEnv
        return AtariEnv
    if suite == "gym":
        from dreamer.envs.gym_env import GymEnv
        return GymEnv
    if suite == "minerl":
        from dreamer.envs.minerl_env import MineRLEnv
        return MineRLEnv
    if suite == "dmc":
        from dreamer.envs.dmc import DMCEnv
        return DMCEnv
    if suite == "dmc_vision":
        from dreamer.envs.dmc import DMCVisionEnv
        return DMCVisionEnv
    suites = ", ".join(f"{name} ({how})" for name, how in INSTALL.items())
    raise ConfigError(f"env suite {suite!r} has no adapter in this version; accepted: {suites}")


def split_name(env: str) -> tuple[str, str]:
    """`atari:Pong` -> (`atari`, `Pong`); the task is required for every suite but crafter."""
    suite = suite_of(env)
    task = env.split(":", 1)[1] if ":" in env else ""
    if suite != "crafter" and not task:
        raise ConfigError(f"env {env!r} names no task; write it as {suite}:<task>, e.g. gym:CartPole-v1")
    return suite, task


def make_env(env: str, cfg: EnvConfig, seed: int | None = None) -> Adapter:
    suite, task = split_name(env)
    return _constructor(suite)(task, cfg, seed)


def make_vector(env: str, cfg: EnvConfig, count: int, seed: int) -> gym.vector.VectorEnv:
    """`count` adapters with seeds seed, seed+1, ...; next-step autoreset, so the step after
    `is_last` returns the reset observation (with `is_first`)."""
    make_env(env, cfg).close()  # fail here, in this process, on a bad name or missing package
    fns = [partial(make_env, env, cfg, seed + i) for i in range(count)]
    mode = gym.vector.AutoresetMode.NEXT_STEP
    if count == 1:
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="spawn")


def spaces(env: str, cfg: EnvConfig) -> tuple[gym.spaces.Dict, gym.spaces.Space]:
    """(observation dict space, action space) of an env name."""
    adapter = make_env(env, cfg)
    try:
        return adapter.observation_space, adapter.action_space
    finally:
        adapter.close()
