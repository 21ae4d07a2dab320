"""The DeepMind Control Suite adapters (`dmc:`, `dmc_vision:`): gymnasium's checker, observations,
action repeat, the time limit, the camera, the render settings, exact resume, short training runs
and the one-line errors."""

import importlib
import json
import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("dm_control")  # the `dmc` extra; CI installs it

from dreamer.cli import main  # noqa: E402
from dreamer.config import ConfigError, load_config  # noqa: E402
from dreamer.envs import dmc, make_env, make_vector  # noqa: E402
from dreamer.envs.driver import Driver, random_policy  # noqa: E402
from tests.conftest import train_args  # noqa: E402

TASK = "cartpole_swingup"


def env_cfg(name, *overrides):
    return load_config(list(overrides), {"env": name}).environment


@pytest.fixture(scope="module")
def suite():
    return dmc._import_suite()


@pytest.mark.parametrize("suite_name", ["dmc", "dmc_vision"])
def test_gymnasium_env_checker(suite_name):
    env = make_env(f"{suite_name}:{TASK}", env_cfg(f"{suite_name}:{TASK}"), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite reward and vector bounds are expected
        check_env(env, skip_render_check=True)
    env.close()


def test_observations_keys_dtypes_and_shapes(suite):
    proprio = make_env(f"dmc:{TASK}", env_cfg(f"dmc:{TASK}"), seed=0)
    obs, _ = proprio.reset()
    spec = suite.load(*TASK.split("_", 1)).observation_spec()  # position (3), velocity (2)
    assert set(obs) == {"vector", "reward", "is_first", "is_last", "is_terminal"}
    assert obs["vector"].dtype == np.float32 and obs["vector"].shape == (sum(v.shape[0] for v in spec.values()),)
    vision = make_env(f"dmc_vision:{TASK}", env_cfg(f"dmc_vision:{TASK}"), seed=0)
    obs, _ = vision.reset()
    assert set(obs) == {"image", "reward", "is_first", "is_last", "is_terminal"}
    assert obs["image"].dtype == np.uint8 and obs["image"].shape == (64, 64, 3) and obs["image"].std() > 0
    assert vision.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    proprio.close()
    vision.close()


def test_vector_is_the_observations_flattened_in_spec_order(suite):
    env = make_env("dmc:walker_walk", env_cfg("dmc:walker_walk"), seed=4)
    obs, _ = env.reset()
    raw = suite.load("walker", "walk", task_kwargs={"random": 4}).reset().observation
    assert list(raw) == ["orientations", "height", "velocity"]  # `height` is a scalar
    np.testing.assert_array_equal(obs["vector"], np.concatenate([np.ravel(v) for v in raw.values()]).astype(np.float32))
    env.close()


def test_action_repeat_sums_rewards_and_the_time_limit_truncates(suite):
    """At repeat 2 an agent step is two suite steps with their rewards summed, and the suite's
    1,000-step episode ends after 500 agent steps as a truncation."""
    env = make_env(f"dmc:{TASK}", env_cfg(f"dmc:{TASK}"), seed=7)
    reference = suite.load("cartpole", "swingup", task_kwargs={"random": 7})
    env.reset()
    reference.reset()
    rng = np.random.default_rng(0)
    steps = 0
    while True:
        action = rng.uniform(-1, 1, (1,)).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        want = sum(reference.step(action).reward for _ in range(2))
        assert reward == pytest.approx(want, abs=1e-6) and obs["reward"] == np.float32(reward)
        steps += 1
        if obs["is_last"]:
            break
    assert steps == 500 and truncated and not terminated and not obs["is_terminal"]
    assert reference.step(np.zeros(1)).first()  # the suite's own episode ended at the same moment
    env.close()


def test_length_cuts_episodes_in_agent_steps():
    env = make_env(f"dmc:{TASK}", env_cfg(f"dmc:{TASK}", "environment.length=7"), seed=0)
    env.reset()
    flags = [env.step(np.zeros(1, np.float32))[0]["is_last"] for _ in range(7)]
    assert flags == [False] * 6 + [True]
    obs, _ = env.reset()
    assert obs["is_first"]
    env.close()


def test_suite_names_split_by_the_task_list(suite):
    tasks = dmc.suite_tasks(suite)
    assert tasks["ball_in_cup_catch"] == ("ball_in_cup", "catch")
    assert tasks["point_mass_easy"] == ("point_mass", "easy")
    assert tasks["cartpole_swingup_sparse"] == ("cartpole", "swingup_sparse")
    assert not any(domain == "lqr" for domain, _ in tasks.values())  # unbounded actions


def test_camera_choice():
    assert dmc.camera_for("quadruped") == 2
    assert dmc.camera_for("cartpole") == dmc.camera_for("walker") == 0


def test_vision_renders_the_chosen_camera_with_the_cheap_settings():
    env = make_env(f"dmc_vision:{TASK}", env_cfg(f"dmc_vision:{TASK}"), seed=0)
    obs, _ = env.reset()
    physics = env.env.physics
    np.testing.assert_array_equal(obs["image"], physics.render(64, 64, camera_id=0))
    assert not np.array_equal(obs["image"], physics.render(64, 64, camera_id=1))
    context = physics.contexts.mujoco.ptr  # made by the first render, from the model's settings
    assert (context.shadowSize, context.offSamples) == (dmc.SHADOW_SIZE, dmc.OFFSCREEN_SAMPLES)
    assert (context.shadowSize, context.offSamples) != (2048, 4)  # MuJoCo's defaults
    env.close()


def test_quadruped_actions_are_rescaled_to_its_bounds():
    env = make_env("dmc:quadruped_walk", env_cfg("dmc:quadruped_walk"), seed=0)
    env.reset()
    seen = []
    step = env.env.step
    env.env.step = lambda action: (seen.append(action.copy()), step(action))[1]
    env.step(np.ones(12, np.float32))
    spec = env.env.action_spec()
    np.testing.assert_allclose(seen[0], spec.maximum)  # 1.1 and 0.8 for some joints
    env.close()


@pytest.mark.parametrize("name", ["dmc:reacher_easy", f"dmc_vision:{TASK}"])
def test_restored_driver_continues_the_same_episodes(name):
    """As tests/test_resume.py: step, save, step on; a driver on fresh envs restored from the save
    sees the same observations. Reacher places each episode's target in the MuJoCo model, so the
    restore must carry the model, not only the physics state."""
    cfg = env_cfg(name, "environment.length=20")
    first = Driver(make_vector(name, cfg, 1, seed=5), seed=5, on_step=lambda step: None)
    act_space = first.envs.single_action_space

    def roll(driver, seed, steps):
        policy, observations, episodes = random_policy(act_space, 1, np.random.default_rng(seed)), [], []
        for _ in range(steps):
            episodes += driver.step(policy)
            observations.append({k: v.copy() for k, v in driver.obs.items()})
        return observations, episodes

    roll(first, 0, 30)
    state = first.state_dict()
    assert state["envs"] is not None
    want = roll(first, 1, 45)
    second = Driver(make_vector(name, cfg, 1, seed=99), seed=99, on_step=lambda step: None)
    assert second.load_state_dict(state)
    got = roll(second, 1, 45)
    assert got[1] == want[1] and len(want[1]) >= 2  # episodes of 20 steps end inside the window
    for a, b in zip(got[0], want[0]):
        assert all(np.array_equal(a[k], b[k]) for k in b)
    first.close()
    second.close()


@pytest.mark.parametrize("suite_name", ["dmc", "dmc_vision"])
def test_train_a_few_hundred_steps(tmp_path, suite_name):
    logdir = tmp_path / suite_name
    args = train_args(logdir, f"{suite_name}:{TASK}", 200, "--envs", "1", "--train-ratio", "16",
                      "--set", "environment.length=50")
    assert main(args) == 0
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 200 and any("loss/world_model" in row for row in rows)
    episodes = (logdir / "episodes.jsonl").read_text().splitlines()
    assert [json.loads(line)["length"] for line in episodes][:3] == [50, 50, 50]
    assert "repeat: 2" in (logdir / "config.yaml").read_text()


@pytest.mark.parametrize(
    "name, message",
    [
        ("dmc:walker", "unknown DeepMind Control task 'walker' in env=dmc:walker; accepted: acrobot_swingup, "),
        ("dmc_vision:cup_catch", "unknown DeepMind Control task 'cup_catch' in env=dmc_vision:cup_catch; accepted: "),
        ("dmc:lqr_lqr_2_1", "unknown DeepMind Control task 'lqr_lqr_2_1'"),
    ],
)
def test_unknown_tasks(name, message):
    with pytest.raises(ConfigError) as info:
        make_env(name, env_cfg(name))
    assert str(info.value).startswith(message) and "ball_in_cup_catch" in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_task_on_the_command_line_is_one_line(tmp_path, capsys):
    assert main(["train", "--env", "dmc:cartpole_upswing", "--logdir", str(tmp_path / "run")]) != 0
    err = capsys.readouterr().err.strip()
    assert "unknown DeepMind Control task 'cartpole_upswing'" in err and "\n" not in err and "Traceback" not in err


def _failing_import(error):
    def import_module(name, *args):
        if name.startswith("dm_control"):
            raise error
        return importlib.import_module(name, *args)
    return import_module


@pytest.mark.parametrize(
    "error, expected",
    [
        (ModuleNotFoundError("No module named 'dm_control'", name="dm_control"),
         "needs the 'dm_control' package, which is not installed; install it with: pip install 'dreamer-rl[dmc]'"),
        (ModuleNotFoundError("No module named 'mujoco'", name="mujoco"), "install it with: pip install 'dreamer-rl[dmc]'"),
        (AttributeError("'NoneType' object has no attribute 'glGetError'"),  # PyOpenGL without libOSMesa
         "install the GL libraries: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri"),
        (ImportError("Cannot initialize a EGL device display.", name="OpenGL.EGL"), "libosmesa6 (MUJOCO_GL=osmesa)"),
    ],
)
def test_missing_package_or_gl_library_is_one_line(monkeypatch, error, expected):
    monkeypatch.setattr(dmc.importlib, "import_module", _failing_import(error))
    with pytest.raises(ConfigError) as info:
        make_env(f"dmc_vision:{TASK}", env_cfg(f"dmc_vision:{TASK}"))
    assert expected in str(info.value) and "\n" not in str(info.value)
    if not isinstance(error, ModuleNotFoundError):
        assert "pip install 'dreamer-rl[dmc]'" in str(info.value)


def test_mujoco_gl_defaults_to_egl_unless_set(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    dmc._import_suite()
    assert os.environ["MUJOCO_GL"] == "egl"
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    dmc._import_suite()  # already imported here; the user's choice is left alone
    assert os.environ["MUJOCO_GL"] == "osmesa"


def test_importing_the_suite_leaves_the_root_logger_as_it_was():
    """Otherwise every `dreamer` log line is printed twice (once as 'INFO:dreamer:...')."""
    import logging
    import sys

    from dreamer.envs import dmc

    for name in [m for m in sys.modules if m.startswith("dm_control")]:
        del sys.modules[name]  # import it afresh
    saved = list(logging.root.handlers)  # pytest's; with them a basicConfig would do nothing
    for handler in saved:
        logging.root.removeHandler(handler)
    try:
        dmc._import_suite()
        assert logging.root.handlers == []
    finally:
        for handler in saved:
            logging.root.addHandler(handler)
