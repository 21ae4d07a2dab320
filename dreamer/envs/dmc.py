"""`dmc:<domain>_<task>` and `dmc_vision:<domain>_<task>`: the DeepMind Control Suite (Tassa et al.
2018, arXiv 1801.00690) as the DreamerV3 paper (P1, arXiv 2301.04104) runs it.

- `dmc` (proprioceptive): every observation array of the task, flattened and concatenated in the
  order of the task's observation spec, as the float32 `vector` input.
- `dmc_vision`: only a `size` x `size` RGB `image`, rendered by MuJoCo after every agent step from
  camera 2 for quadruped and camera 0 otherwise (the choice of the 2023 reference code,
  `embodied/envs/dmc.py`, `DEFAULT_CAMERAS`).

Actions are taken in [-1, 1] and rescaled to the task's bounds (all [-1, 1] but quadruped's);
`repeat` repeats each action and sums its rewards. Suite episodes last 1,000 control steps (500 agent
steps at repeat 2) and end by the time limit: `is_last` without `is_terminal`. `length`, when set,
cuts episodes earlier, after that many agent steps.

Headless rendering: `MUJOCO_GL` is set to `egl` unless the user chose a backend (`osmesa` renders
on the CPU without EGL); it must be set before mujoco is imported.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import zlib
from typing import Any

import gymnasium as gym
import numpy as np

from dreamer.config import ConfigError, EnvConfig
from dreamer.envs.base import Adapter

# What a machine needs for this module: the pinned pair (pyproject.toml explains the pin) and the
# Debian libraries of the two headless GL backends.
PIP_INSTALL = "pip install 'dreamer-rl[dmc]'"
APT_INSTALL = "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri (MUJOCO_GL=egl) or libosmesa6 (MUJOCO_GL=osmesa)"
DEFAULT_GL_BACKEND = "egl"  # headless; the 2023 reference code sets the same default

# Cameras of the reference code (embodied/envs/dmc.py, DEFAULT_CAMERAS): quadruped's camera 0 follows
# too closely to show the gait, its camera 2 shows the whole body; every other domain uses camera 0.
DOMAIN_CAMERAS = {"quadruped": 2}
DEFAULT_CAMERA = 0

# MuJoCo's visual quality, set on the model before the first render creates the GL context. The
# defaults (2048-pixel shadow maps, 4x multisampling) cost most of the render time of a 64x64
# frame: measured on 2 CPU cores with EGL, 33-47 frames/s with them against 107-121 with these,
# and the small frames barely change.
SHADOW_SIZE = 512
OFFSCREEN_SAMPLES = 0

# The LQR domain's actions are unbounded (+-1e10), so [-1, 1] cannot be rescaled onto them.
EXCLUDED_DOMAINS = ("lqr",)


def camera_for(domain: str) -> int:
    """The camera `dmc_vision` renders for a domain."""
    return DOMAIN_CAMERAS.get(domain, DEFAULT_CAMERA)


def _import_suite() -> Any:
    """`dm_control.suite`, or a one-line ConfigError saying what to install."""
    os.environ.setdefault("MUJOCO_GL", DEFAULT_GL_BACKEND)
    handlers = list(logging.root.handlers)
    try:
        return importlib.import_module("dm_control.suite")
    except ImportError as err:
        if (err.name or "").split(".")[0] in ("dm_control", "mujoco"):
            raise ConfigError(f"the DeepMind Control Suite needs the {err.name!r} package, which is not "
                              f"installed; install it with: {PIP_INSTALL}") from None
        raise _gl_error(err) from None
    except (AttributeError, OSError, RuntimeError) as err:  # PyOpenGL finding no GL library
        raise _gl_error(err) from None
    finally:
        # A module-level `logging.info` in the import configures the root logger with a stderr
        # handler, which would print every line of the `dreamer` logger a second time.
        for handler in set(logging.root.handlers) - set(handlers):
            logging.root.removeHandler(handler)


def _gl_error(err: BaseException) -> ConfigError:
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ConfigError(f"MuJoCo cannot render with MUJOCO_GL={os.environ.get('MUJOCO_GL', '')} ({first}); "
                       f"install the GL libraries: {APT_INSTALL}; and the packages: {PIP_INSTALL}")


def suite_tasks(suite: Any) -> dict[str, tuple[str, str]]:
    """`<domain>_<task>` -> (domain, task) for every task of the suite's list (`ALL_TASKS`); split
    by that list because both parts may hold underscores (`ball_in_cup_catch`, `point_mass_easy`)."""
    return {f"{domain}_{task}": (domain, task) for domain, task in suite.ALL_TASKS
            if domain not in EXCLUDED_DOMAINS}


class DMCEnv(Adapter):
    """`dmc:<domain>_<task>`: proprioceptive observations as one float32 `vector`."""

    pixels = False
    suite_name = "dmc"

    def __init__(self, task: str, cfg: EnvConfig, seed: int | None = None):
        suite = _import_suite()
        tasks = suite_tasks(suite)
        if task not in tasks:
            raise ConfigError(f"unknown DeepMind Control task {task!r} in env={self.suite_name}:{task}; "
                              f"accepted: {', '.join(sorted(tasks))}")
        self.task, self.repeat, self.length, self.size = task, cfg.repeat, cfg.length, cfg.size
        self.domain = tasks[task][0]
        self.env = suite.load(*tasks[task], task_kwargs={"random": seed})
        quality = self.env.physics.model.vis.quality
        quality.shadowsize, quality.offsamples = SHADOW_SIZE, OFFSCREEN_SAMPLES
        self.camera = camera_for(self.domain)
        spec = self.env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, dtype=np.float32)
        if self.pixels:
            inputs = {"image": gym.spaces.Box(0, 255, (self.size, self.size, 3), dtype=np.uint8)}
        else:
            width = sum(int(np.prod(s.shape)) for s in self.env.observation_spec().values())
            inputs = {"vector": gym.spaces.Box(-np.inf, np.inf, (width,), dtype=np.float32)}
        self._init_spaces(inputs, action_space)
        self._seed = seed
        self._steps = 0  # agent steps into the episode, for `length`

    def _inputs(self, time_step) -> dict[str, np.ndarray]:
        if self.pixels:
            image = self.env.physics.render(self.size, self.size, camera_id=self.camera)
            return {"image": np.ascontiguousarray(image, dtype=np.uint8)}
        parts = [np.asarray(value, np.float32).ravel() for value in time_step.observation.values()]
        return {"vector": np.concatenate(parts)}

    def _reset(self, seed):
        if seed is not None:  # the task draws its initial state from this RNG
            self.env.task.random.seed(seed)
        self._steps = 0
        return self._inputs(self.env.reset())

    def _step(self, action):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        action = self._low + (action + 1.0) / 2.0 * (self._high - self._low)
        total = 0.0
        for _ in range(self.repeat):
            time_step = self.env.step(action)
            total += float(time_step.reward or 0.0)
            if time_step.last():
                break
        self._steps += 1
        terminated = time_step.last() and time_step.discount == 0  # only LQR (excluded) ends so
        truncated = not terminated and (time_step.last() or bool(self.length and self._steps >= self.length))
        return self._inputs(time_step), total, bool(terminated), truncated

    def __getstate__(self) -> dict:
        """Pickled for a checkpoint (the driver saves in-process envs). The dm_control env pickles
        with its physics (model and data), its task's RNG and its step counter, so a restored env
        continues exactly; the model is kept because tasks such as reacher, fish and finger place
        their episode's target in it. MuJoCo's data buffer is mostly empty: compressed, about 0.7 MB."""
        state = dict(self.__dict__)
        state["env"] = zlib.compress(pickle.dumps(self.env), 1)
        return state

    def __setstate__(self, state: dict) -> None:
        _import_suite()  # MUJOCO_GL before mujoco loads in a fresh process
        state["env"] = pickle.loads(zlib.decompress(state["env"]))
        self.__dict__.update(state)

    def close(self):
        self.env.close()


class DMCVisionEnv(DMCEnv):
    """`dmc_vision:<domain>_<task>`: a uint8 RGB `image` only."""

    pixels = True
    suite_name = "dmc_vision"
