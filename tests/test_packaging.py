"""Packaging: a distribution name of our own, one version string, the license file, and the
gymnasium internals the driver relies on."""

import importlib.metadata
import tomllib
from pathlib import Path

import gymnasium as gym
import numpy as np

import dreamer
from dreamer.config import load_config
from dreamer.envs import make_vector

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_distribution_name_is_not_the_taken_one_and_the_command_stays():
    assert PROJECT["name"] == "dreamer-rl"  # "dreamer" on PyPI is another project
    assert PROJECT["scripts"] == {"dreamer": "dreamer.cli:main"}
    extras = [req for group in PROJECT["optional-dependencies"].values() for req in group]
    assert not [req for req in extras if req.startswith("dreamer[")]  # self-references use the new name


def test_one_version_string():
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "dreamer.__version__"}
    assert importlib.metadata.version("dreamer-rl") == dreamer.__version__


def test_license_file_is_the_declared_license():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_gymnasium_keeps_the_autoreset_flags_the_driver_restores():
    """`Driver.load_state_dict` sets SyncVectorEnv._autoreset_envs; pyproject bounds gymnasium to
    the versions that have it, and this fails first if one does not."""
    envs = make_vector("gym:CartPole-v1", load_config([], {"env": "gym:CartPole-v1"}).environment, 1, seed=0)
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    envs.reset(seed=0)
    assert isinstance(envs._autoreset_envs, np.ndarray) and envs._autoreset_envs.shape == (1,)
    envs.close()
