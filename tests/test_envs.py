"""Env adapters: gymnasium's checker, flags, errors, vector collection and score maths."""

import importlib.util
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from dreamer.config import ConfigError, load_config
from dreamer.envs import make_env, make_vector, spaces
from dreamer.envs.atari import human_normalized
from dreamer.envs.crafter_env import crafter_score


def env_cfg(name, *overrides):
    return load_config(list(overrides), {"env": name}).environment


ADAPTERS = ["gym:CartPole-v1", "gym:Pendulum-v1", "gym:FrozenLake-v1", "crafter", "atari:Pong"]


@pytest.mark.parametrize("name", ADAPTERS)
def test_gymnasium_env_checker(name):
    if name.startswith("atari"):
        pytest.importorskip("ale_py")
    env = make_env(name, env_cfg(name), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite reward bounds are expected
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert obs["is_first"] and not obs["is_last"] and obs["reward"] == 0
    assert set(obs) >= {"reward", "is_first", "is_last", "is_terminal"}
    env.close()


def test_gym_flags_terminal_and_truncation():
    env = make_env("gym:CartPole-v1", env_cfg("gym:CartPole-v1"), seed=0)
    env.reset()
    while True:  # always pushing left ends the episode by failure: terminal
        obs, *_ = env.step(0)
        if obs["is_last"]:
            break
    assert obs["is_terminal"]
    short = make_env("gym:CartPole-v1", env_cfg("gym:CartPole-v1", "environment.length=3"), seed=0)
    short.reset()
    for _ in range(3):
        obs, *_ = short.step(0)
    assert obs["is_last"] and not obs["is_terminal"]  # the time limit is a truncation


def test_gym_continuous_actions_are_rescaled():
    env = make_env("gym:Pendulum-v1", env_cfg("gym:Pendulum-v1"), seed=0)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    env.reset()
    seen = []
    env.env.step = lambda action: (seen.append(action), (np.zeros(3), 0.0, False, False, {}))[1]
    env.step(np.array([1.0], np.float32))
    env.step(np.array([-0.5], np.float32))
    np.testing.assert_allclose(seen, [[2.0], [-1.0]])  # Pendulum torques lie in [-2, 2]


def test_discrete_observations_become_one_hot():
    obs_space, _ = spaces("gym:FrozenLake-v1", env_cfg("gym:FrozenLake-v1"))
    assert obs_space["vector"].shape == (16,)
    obs, _ = make_env("gym:FrozenLake-v1", env_cfg("gym:FrozenLake-v1")).reset(seed=0)
    assert obs["vector"].sum() == 1.0 and obs["vector"][0] == 1.0


def test_crafter_adapter():
    env = make_env("crafter", env_cfg("crafter"), seed=0)
    obs, _ = env.reset()
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert env.action_space.n == 17 and env.length == 10000
    assert sum(key.startswith("log_achievement_") for key in obs) == 22


class ImageEnv(gym.Env):
    """Pixels only, as CarRacing's (96, 96, 3): what `gym:` refuses (the image suites take pixels)."""
    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)


gym.register("DreamerTestsImage-v0", entry_point=ImageEnv)


@pytest.mark.parametrize(
    "name, message",
    [
        ("dmlab:rooms", "unknown env suite 'dmlab' in env='dmlab:rooms'; accepted: atari, atari100k, crafter, dmc, "
                        "dmc_vision, gym, minerl"),
        ("gym:NoSuchEnv-v0", "unknown gymnasium id 'NoSuchEnv-v0'"),
        ("gym", "names no task; write it as gym:<task>"),
        ("gym:DreamerTestsImage-v0", "has observation space Box(0, 255, (8, 8, 3), uint8); accepted: 1-D Box or "
                                     "Discrete"),
        ("minerl:ObtainDiamond", "unknown minerl task 'ObtainDiamond' in env='minerl:ObtainDiamond'; "
                                 "accepted: diamond"),
        ("minerl:diamond", "install: minerl (pip install 'dreamer-rl[minerl]' "
                           "(needs Java 8; the Docker image docker/Dockerfile.minerl has it))"),
    ],
)
def test_bad_env_names(name, message):
    if name == "minerl:diamond" and importlib.util.find_spec("minerl") is not None:
        pytest.skip("minerl is installed here")
    with pytest.raises(ConfigError) as info:
        make_env(name, env_cfg("crafter"))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_vector_env_resets_with_is_first_after_is_last():
    envs = make_vector("gym:CartPole-v1", env_cfg("gym:CartPole-v1", "environment.length=5"), 2, seed=0)
    obs, _ = envs.reset(seed=0)
    assert obs["is_first"].all()
    flags = []
    for _ in range(12):
        obs, *_ = envs.step(np.zeros(2, np.int64))
        flags.append((obs["is_first"].copy(), obs["is_last"].copy()))
    envs.close()
    firsts = np.array([f for f, _ in flags])
    lasts = np.array([l for _, l in flags])
    # every is_last is followed by is_first on the next step of the same env, and only then
    assert np.array_equal(firsts[1:], lasts[:-1])


def test_crafter_score_by_hand():
    assert crafter_score(np.zeros(22)) == pytest.approx(0.0)
    assert crafter_score(np.full(22, 100.0)) == pytest.approx(100.0)
    assert crafter_score(np.array([0.0, 100.0])) == pytest.approx(math.sqrt(101) - 1)  # exp(ln(101)/2) - 1


def test_human_normalized_score():
    assert human_normalized("Pong", 14.6) == pytest.approx(1.0)
    assert human_normalized("Pong", -20.7) == pytest.approx(0.0)
    assert human_normalized("Breakout", 1.7 + (30.5 - 1.7) / 2) == pytest.approx(0.5)
    assert human_normalized("NotAGame", 1.0) is None


def test_atari_action_sets():
    pytest.importorskip("ale_py")
    sets = {}
    for suite in ("atari", "atari100k"):
        cfg = load_config([], {"env": f"{suite}:Pong"})
        env = make_env(f"{suite}:Pong", cfg.environment, seed=0)
        sets[suite] = env.action_space.n
        env.close()
    assert sets == {"atari": 18, "atari100k": 6}  # Pong's minimal set has 6 actions


def test_atari_under_the_2024_recipe_gives_96x96_gray_frames():
    pytest.importorskip("ale_py")
    cfg = load_config([], {"env": "atari:Pong", "recipe": "2024"})
    env = make_env("atari:Pong", cfg.environment, seed=0)
    try:
        obs = env.reset(seed=0)[0]
        assert env.observation_space["image"].shape == obs["image"].shape == (96, 96, 1)
        assert env.action_space.n == 18
    finally:
        env.close()
