"""`minerl:<task>` adapter (the DreamerV3 paper's Minecraft Diamond setting) on a fake MineRL 0.4.x
env: observations, the 25 actions, sticky jump, pitch limit, reward, episode ends, errors."""

import importlib.util
import pickle
import string
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import torch

from dreamer.bench import agent_batch
from dreamer.config import ConfigError, load_config
from dreamer.envs import make_env
from dreamer.envs import minerl_env
from dreamer.envs.minerl_env import ACTIONS, EQUIPPED, ITEMS, VECTOR_SIZE, minerl_action
from dreamer.recipes import build_agent
from tests.conftest import TINY, TINY_2024

OBTAIN_DIAMOND_ITEMS = (  # MineRLObtainDiamond's flat inventory, plus diamond
    "coal", "cobblestone", "crafting_table", "dirt", "furnace", "iron_axe", "iron_ingot", "iron_ore",
    "iron_pickaxe", "log", "planks", "stick", "stone", "stone_axe", "stone_pickaxe", "torch", "wooden_axe",
    "wooden_pickaxe", "diamond",
)
_count = gym.spaces.Box(0, 2304, (), np.int32)
FAKE_SPACE = gym.spaces.Dict({  # MineRL 0.4.x observation layout
    "pov": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8),
    "inventory": gym.spaces.Dict({item: _count for item in OBTAIN_DIAMOND_ITEMS}),
    "equipped_items": gym.spaces.Dict({"mainhand": gym.spaces.Dict({
        "type": gym.spaces.Text(32, charset=string.ascii_lowercase + "_"),
        "damage": gym.spaces.Box(-1, 1562, (), np.int64),
        "maxDamage": gym.spaces.Box(-1, 1562, (), np.int64),
    })}),
    "life_stats": gym.spaces.Dict({
        "life": gym.spaces.Box(0.0, 20.0, (), np.float64),
        "food": gym.spaces.Box(0, 20, (), np.int64),
        "air": gym.spaces.Box(0, 300, (), np.int64),
    }),
})


def fake_obs(inventory=None, mainhand="air", life=20.0, food=20, air=300):
    counts = {item: 0 for item in OBTAIN_DIAMOND_ITEMS} | (inventory or {})
    return {
        "pov": np.full((64, 64, 3), 7, np.uint8),
        "inventory": {item: np.array(n, np.int32) for item, n in counts.items()},
        "equipped_items": {"mainhand": {"type": mainhand, "damage": np.array(0), "maxDamage": np.array(0)}},
        "life_stats": {"life": np.array(life, np.float64), "food": np.array(food), "air": np.array(air)},
    }


class FakeMineRL:
    """MineRL 0.4.x stand-in with the old gym API. `reset` returns `fake_obs(**start)`; step t
    (1, 2, ...) returns `fake_obs(**script[t - 1])` (the last entry once the script runs out), a
    MineRL reward of 123 that the adapter must ignore, and done at step `done_at`."""

    observation_space = FAKE_SPACE

    def __init__(self, script=(), start=None, done_at=None):
        self.script, self.start, self.done_at = list(script), start or {}, done_at
        self.actions, self.seeds, self.t, self.closed = [], [], 0, False

    def seed(self, seed):
        self.seeds.append(seed)

    def reset(self):
        self.t = 0
        return fake_obs(**self.start)

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        spec = self.script[min(self.t, len(self.script)) - 1] if self.script else {}
        return fake_obs(**spec), 123.0, self.t == self.done_at, {}

    def close(self):
        self.closed = True


def env_cfg(*overrides):
    return load_config(list(overrides), {"env": "minerl:diamond"}).environment


@pytest.fixture
def factory(monkeypatch):
    """Makes `make_minerl_env` return FakeMineRL(**kwargs); returns (set kwargs, calls)."""
    calls, kwargs = [], {}

    def make(task, size):
        calls.append((task, size))
        return FakeMineRL(**kwargs)

    monkeypatch.setattr(minerl_env, "make_minerl_env", make)
    return kwargs, calls


def adapter(factory, *overrides, **fake):
    factory[0].clear()
    factory[0].update(fake)
    env = make_env("minerl:diamond", env_cfg(*overrides), seed=0)
    env.reset()
    return env, env.env


def sent(fake):
    """The last MineRL action the adapter sent, camera as a tuple."""
    return {**fake.actions[-1], "camera": tuple(float(x) for x in fake.actions[-1]["camera"])}


def contains(space, obs):
    return space.contains({key: np.asarray(value) for key, value in obs.items()})  # scalars as 0-d arrays


def test_spaces_and_observations(factory):
    env, fake = adapter(factory, script=[{"inventory": {"log": 2}}])
    assert FakeMineRL.observation_space.contains(fake_obs(inventory={"log": 2}, mainhand="wooden_pickaxe"))
    space = env.observation_space
    assert set(space) == {"image", "vector", "log_inventory_log", "log_inventory_cobblestone",
                          "log_inventory_iron_ingot", "log_inventory_diamond",
                          "reward", "is_first", "is_last", "is_terminal"}
    assert space["image"].shape == (64, 64, 3) and space["image"].dtype == np.uint8
    assert space["vector"].shape == (VECTOR_SIZE,) == (19 + 19 + 21 + 3,) and space["vector"].dtype == np.float32
    assert env.action_space == gym.spaces.Discrete(25)
    obs, _ = env.reset(seed=4)
    assert contains(space, obs) and obs["is_first"] and obs["reward"] == 0
    obs, reward, terminated, truncated, _ = env.step(6)
    assert contains(space, obs) and obs["image"].dtype == np.uint8 and obs["vector"].dtype == np.float32
    assert obs["log_inventory_log"] == 2 and reward == pytest.approx(1.0)  # MineRL's 123 is ignored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite bounds are expected
        check_env(env, skip_render_check=True)


def test_vector_layout_by_hand(factory):
    script = [
        {"inventory": {"log": 1, "planks": 4}, "mainhand": "wooden_pickaxe", "life": 15.0, "food": 10, "air": 150},
        {"inventory": {"log": 5}, "mainhand": "diamond_sword"},
    ]
    env, _ = adapter(factory, script=script, start={"inventory": {"log": 3, "dirt": 2}})
    assert ITEMS[:5] == ("coal", "cobblestone", "crafting_table", "diamond", "dirt")
    assert ITEMS[10:12] == ("log", "planks")
    obs, *_ = env.step(0)
    expected = np.zeros(62, np.float32)
    expected[10], expected[11] = 1, 4  # counts: log, planks
    expected[19 + 4], expected[19 + 10], expected[19 + 11] = 2, 3, 4  # maxima: dirt, log (at reset), planks
    expected[38 + 1 + 18] = 1  # main hand: EQUIPPED = (air, *ITEMS, other); wooden_pickaxe is ITEMS[18]
    expected[59:] = 15 / 20, 10 / 20, 150 / 300  # health, hunger, breath
    assert EQUIPPED[1 + 18] == "wooden_pickaxe"
    np.testing.assert_allclose(obs["vector"], expected)
    obs, *_ = env.step(0)
    assert obs["vector"][10] == 5 and obs["vector"][19 + 10] == 5 and obs["vector"][19 + 4] == 2
    assert obs["vector"][38 + 20] == 1 and obs["vector"][38:59].sum() == 1  # unknown type -> `other`
    np.testing.assert_allclose(obs["vector"][59:], [1.0, 1.0, 1.0])
    obs, _ = env.reset()  # maxima start over
    assert obs["vector"][19 + 11] == 0 and obs["vector"][19 + 10] == 3 and obs["vector"][38] == 1  # air


def expected_action(**changes):
    base = {"forward": 0, "back": 0, "left": 0, "right": 0, "jump": 0, "sneak": 0, "sprint": 0, "attack": 0,
            "camera": (0.0, 0.0), "craft": "none", "nearbyCraft": "none", "nearbySmelt": "none",
            "place": "none", "equip": "none"}
    return base | changes


REPRESENTATIVE = {
    0: expected_action(),
    1: expected_action(attack=1),
    2: expected_action(camera=(-15.0, 0.0)),
    3: expected_action(camera=(15.0, 0.0)),
    4: expected_action(camera=(0.0, -15.0)),
    5: expected_action(camera=(0.0, 15.0)),
    9: expected_action(right=1),
    10: expected_action(jump=1, forward=1),
    11: expected_action(place="dirt"),
    14: expected_action(craft="crafting_table"),
    15: expected_action(place="crafting_table"),
    16: expected_action(nearbyCraft="wooden_pickaxe"),
    19: expected_action(equip="stone_pickaxe"),
    21: expected_action(equip="iron_pickaxe"),
    22: expected_action(nearbyCraft="furnace"),
    24: expected_action(nearbySmelt="iron_ingot"),
}


def test_action_table(factory):
    names = [name for name, _ in ACTIONS]
    assert len(names) == len(set(names)) == 25
    assert names[6:9] == ["forward", "back", "left"] and names[12:14] == ["craft_planks", "craft_stick"]
    assert names[17:19] == ["craft_stone_pickaxe", "craft_iron_pickaxe"] and names[20] == "equip_wooden_pickaxe"
    assert names[23] == "place_furnace"
    env, fake = adapter(factory)
    dicts = []
    for index in range(25):
        env.reset()  # no sticky jump or pitch carried over
        env.step(index)
        action = fake.actions[-1]
        assert isinstance(action["camera"], np.ndarray) and action["camera"].dtype == np.float32
        assert set(action) == set(expected_action())
        dicts.append(sent(fake))
        assert dicts[-1] == {**minerl_action(index), "camera": tuple(minerl_action(index)["camera"].tolist())}
        if index in REPRESENTATIVE:
            assert dicts[-1] == REPRESENTATIVE[index], (index, names[index])
    assert len({tuple(sorted(d.items())) for d in dicts}) == 25


def test_sticky_jump_holds_ten_steps(factory):
    env, fake = adapter(factory)
    env.step(10)
    for _ in range(8):
        env.step(0)
    env.step(1)  # the 10th step still jumps, on top of the chosen attack
    assert sent(fake) == expected_action(jump=1, forward=1, attack=1)
    assert all(a["jump"] == 1 and a["forward"] == 1 for a in fake.actions)
    env.step(0)
    assert sent(fake) == expected_action()
    env.step(10)
    env.step(10)  # choosing it again restarts the count
    for _ in range(10):
        env.step(0)
    assert [a["jump"] for a in fake.actions[-11:]] == [1] * 10 + [0]
    env.step(10)
    env.reset()  # a new episode does not inherit it
    env.step(0)
    assert sent(fake) == expected_action()


def test_pitch_stays_within_60_degrees(factory):
    env, fake = adapter(factory)
    pitches = []
    for index in [3] * 5 + [2] + [4, 5]:
        env.step(index)
        pitches.append(sent(fake)["camera"])
    assert pitches[:4] == [(15.0, 0.0)] * 4  # down to 60
    assert pitches[4] == (0.0, 0.0)  # a fifth would reach 75: dropped
    assert pitches[5:] == [(-15.0, 0.0), (0.0, -15.0), (0.0, 15.0)]  # back to 45; yaw is never limited
    for _ in range(7):
        env.step(2)
    assert [a["camera"][0] for a in fake.actions[-7:]] == [-15.0] * 7  # 45 -> -60
    env.step(2)
    assert sent(fake)["camera"] == (0.0, 0.0)
    env.reset()  # level again
    for _ in range(4):
        env.step(2)
    assert [a["camera"][0] for a in fake.actions[-4:]] == [-15.0] * 4


def test_milestone_and_health_rewards(factory):
    script = [
        {"inventory": {"log": 1}},                      # +1 log
        {"inventory": {"log": 2}},                      # 0
        {"inventory": {"planks": 4}},                   # +1 planks (log lost)
        {"inventory": {"log": 1, "planks": 4}},         # 0: log again
        {"inventory": {"log": 1, "planks": 2, "stick": 4, "crafting_table": 1}, "life": 17.0},  # +2, -0.03
        {"inventory": {"log": 1, "planks": 2, "stick": 4, "crafting_table": 1, "dirt": 9}, "life": 18.0},  # +0.01
        {"inventory": {"diamond": 1, "cobblestone": 3, "coal": 1}, "life": 18.0},  # +2: diamond, cobblestone
    ]
    env, _ = adapter(factory, script=script)
    rewards = [env.step(0)[1] for _ in script]
    assert rewards == pytest.approx([1.0, 0.0, 1.0, 0.0, 2.0 - 0.03, 0.01, 2.0])
    assert sum(rewards) == pytest.approx(5.98)
    obs, _ = env.reset()  # a new episode rewards the milestones again
    assert obs["reward"] == 0
    assert env.step(0)[1] == pytest.approx(1.0)


def test_items_held_at_reset_are_not_milestones(factory):
    env, _ = adapter(factory, start={"inventory": {"log": 2}, "life": 10.0},
                     script=[{"inventory": {"log": 3}, "life": 20.0}, {"inventory": {"log": 3, "stick": 1}}])
    assert env.step(0)[1] == pytest.approx(0.01 * 10)
    assert env.step(0)[1] == pytest.approx(1.0)


def test_truncation_at_length_and_termination_on_done(factory):
    assert make_env("minerl:diamond", env_cfg()).length == 36000
    assert make_env("minerl:diamond", env_cfg("environment.length=0")).length == 36000
    env, _ = adapter(factory, "environment.length=3")
    for _ in range(2):
        obs, _, terminated, truncated, _ = env.step(0)
        assert not obs["is_last"] and not terminated and not truncated
    obs, _, terminated, truncated, _ = env.step(0)
    assert obs["is_last"] and not obs["is_terminal"] and truncated and not terminated
    obs, _ = env.reset()
    assert obs["is_first"] and not env.step(0)[0]["is_last"]  # the count starts over
    env, _ = adapter(factory, "environment.length=3", done_at=2, script=[{"life": 5.0}, {"life": 0.0}])
    env.step(0)
    obs, reward, terminated, truncated, _ = env.step(0)
    assert obs["is_last"] and obs["is_terminal"] and terminated and not truncated
    assert reward == pytest.approx(-0.05)
    env, _ = adapter(factory, "environment.length=2", done_at=2)
    env.step(0)
    assert env.step(0)[2:4] == (True, False)  # death on the last step is terminal, not truncated


def test_seed_and_pickle(factory):
    env, fake = adapter(factory, script=[{"inventory": {"log": 1}}, {"inventory": {"log": 1, "planks": 1}}])
    assert fake.seeds == [0]  # the construction seed, at the first reset only
    env.reset()
    env.reset(seed=7)
    assert fake.seeds == [0, 7]
    env.step(10)
    env.step(3)
    copy = pickle.loads(pickle.dumps(env))
    for index in (0, 3, 3, 3):
        a, b = env.step(index), copy.step(index)
        assert a[1] == b[1] and np.array_equal(a[0]["vector"], b[0]["vector"])
        assert sent(env.env) == sent(copy.env)  # same jump and pitch state
    env.close()
    assert fake.closed


def test_make_env_uses_the_factory_and_rejects_unknown_tasks(factory):
    _, calls = factory
    env = make_env("minerl:diamond", env_cfg("environment.size=64"))
    assert isinstance(env.env, FakeMineRL) and calls == [("diamond", 64)]
    with pytest.raises(ConfigError) as info:
        make_env("minerl:ObtainDiamond", env_cfg())
    assert str(info.value) == "unknown minerl task 'ObtainDiamond' in env='minerl:ObtainDiamond'; accepted: diamond"
    assert calls == [("diamond", 64)]  # the name is checked before anything is built


@pytest.mark.skipif(importlib.util.find_spec("minerl") is not None, reason="minerl is installed here")
def test_missing_minerl_says_how_to_install():
    with pytest.raises(ConfigError) as info:
        make_env("minerl:diamond", env_cfg())
    message = str(info.value)
    assert "\n" not in message
    assert "needs the 'minerl' package" in message and "pip install 'dreamer-rl[minerl]'" in message
    assert "Java 8" in message and "docker/Dockerfile.minerl" in message


@pytest.mark.parametrize("overrides", [TINY, TINY_2024], ids=["2023", "2024"])
def test_both_recipes_act_and_update_on_minerl_observations(factory, overrides):
    """Images, the inventory vector and the log_inventory_* scalars all reach the world model of
    either recipe: two updates move every encoder weight, the decoder and the actor, and a policy
    step gives valid actions. (Zero-initialised output layers and free bits hold some other
    weights still in the first updates.)"""
    env, _ = adapter(factory)
    cfg = load_config([*overrides, "run.precision=fp32"], {"env": "minerl:diamond", "device": "cpu"})
    agent = build_agent(cfg, env.observation_space, env.action_space)
    batch = agent_batch(agent, env.observation_space, env.action_space, 2, 8)
    before = {name: p.detach().clone() for name, p in agent.named_parameters()}
    for _ in range(2):  # the 2024 recipe's first step has learning rate 0
        metrics = agent.train(batch)
    assert metrics and all(np.isfinite(v) for v in metrics.values()), metrics
    params = dict(agent.named_parameters())
    encoder = [name for name in before if name.startswith("wm.encoder.")]
    assert encoder and all(not torch.equal(before[name], params[name]) for name in encoder)
    moved = {part for name in before if not torch.equal(before[name], params[name]) for part in name.split(".")}
    assert {"decoder", "actor"} <= moved, moved
    obs = {key: value[:, 0] for key, value in batch.items() if key in env.observation_space.spaces}
    with torch.no_grad():
        action, _ = agent.policy(obs)
    indices = agent.env_action(action.cpu().numpy())
    assert indices.shape == (2,) and all(env.action_space.contains(int(i)) for i in indices)
