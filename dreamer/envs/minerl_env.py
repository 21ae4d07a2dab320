"""`minerl:<task>`: MineRL 0.4.x in the DreamerV3 paper's Minecraft Diamond setting.

Observations: the `pov` image and one float32 `vector` that concatenates, in this order,
  - the count of each item in `ITEMS` (len(ITEMS) entries),
  - the running maximum of each of those counts within the episode (len(ITEMS)),
  - a one-hot of the main-hand item type over `EQUIPPED` (unknown types go to `other`),
  - health, hunger and breath scaled to [0, 1]: life / 20, food / 20, air / 300,
plus `log_inventory_<item>` counts of `LOGGED_ITEMS` for the logs.

Actions: one Discrete(len(ACTIONS)) space over the paper's 25 actions (`ACTIONS`), each a MineRL
action dict built on a no-op. A jump is held for `JUMP_STEPS` steps (jump + forward), and a pitch
turn that would leave [-PITCH_LIMIT, PITCH_LIMIT] degrees is dropped.

Reward: +1 the first time in an episode each of `MILESTONES` is in the inventory, plus
`HEALTH_REWARD_SCALE` times the change in life points; MineRL's own reward is ignored. MineRL's
`done` (death) is terminal; `length` steps (36,000 in configs/minerl.yaml) is a truncation.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np

from dreamer.config import ConfigError, EnvConfig
from dreamer.envs.base import Adapter

TASKS = ("diamond",)
DEFAULT_LENGTH = 36_000  # steps: 30 minutes of play at MineRL's 20 steps per second
ITEMS = (  # inventory entries of `vector`, in this order: MineRLObtainDiamond's items plus diamond
    "coal", "cobblestone", "crafting_table", "diamond", "dirt", "furnace", "iron_axe", "iron_ingot", "iron_ore",
    "iron_pickaxe", "log", "planks", "stick", "stone", "stone_axe", "stone_pickaxe", "torch", "wooden_axe",
    "wooden_pickaxe",
)
EQUIPPED = ("air", *ITEMS, "other")  # main-hand one-hot; any other type counts as `other`
MILESTONES = (
    "log", "planks", "stick", "crafting_table", "wooden_pickaxe", "cobblestone", "stone_pickaxe", "iron_ore",
    "furnace", "iron_ingot", "iron_pickaxe", "diamond",
)
LOGGED_ITEMS = ("log", "cobblestone", "iron_ingot", "diamond")
MAX_LIFE, MAX_FOOD, MAX_AIR = 20.0, 20.0, 300.0  # Minecraft's full health, hunger and breath bars
HEALTH_REWARD_SCALE = 0.01  # reward per life point gained (negative when lost)
TURN_DEGREES = 15.0  # camera change of one turn action
PITCH_LIMIT = 60.0  # degrees up or down from level that the camera may reach
JUMP_STEPS = 10  # steps a chosen jump is held for, the choosing step included

NOOP: dict[str, Any] = {
    "forward": 0, "back": 0, "left": 0, "right": 0, "jump": 0, "sneak": 0, "sprint": 0, "attack": 0,
    "camera": (0.0, 0.0),  # (pitch, yaw) in degrees; negative pitch looks up
    "craft": "none", "nearbyCraft": "none", "nearbySmelt": "none", "place": "none", "equip": "none",
}
ACTIONS: tuple[tuple[str, dict[str, Any]], ...] = (  # index: (name, what it changes on NOOP)
    ("noop", {}),
    ("attack", {"attack": 1}),
    ("turn_up", {"camera": (-TURN_DEGREES, 0.0)}),
    ("turn_down", {"camera": (TURN_DEGREES, 0.0)}),
    ("turn_left", {"camera": (0.0, -TURN_DEGREES)}),
    ("turn_right", {"camera": (0.0, TURN_DEGREES)}),
    ("forward", {"forward": 1}),
    ("back", {"back": 1}),
    ("left", {"left": 1}),
    ("right", {"right": 1}),
    ("jump", {"jump": 1, "forward": 1}),
    ("place_dirt", {"place": "dirt"}),
    ("craft_planks", {"craft": "planks"}),
    ("craft_stick", {"craft": "stick"}),
    ("craft_crafting_table", {"craft": "crafting_table"}),
    ("place_crafting_table", {"place": "crafting_table"}),
    ("craft_wooden_pickaxe", {"nearbyCraft": "wooden_pickaxe"}),
    ("craft_stone_pickaxe", {"nearbyCraft": "stone_pickaxe"}),
    ("craft_iron_pickaxe", {"nearbyCraft": "iron_pickaxe"}),
    ("equip_stone_pickaxe", {"equip": "stone_pickaxe"}),
    ("equip_wooden_pickaxe", {"equip": "wooden_pickaxe"}),
    ("equip_iron_pickaxe", {"equip": "iron_pickaxe"}),
    ("craft_furnace", {"nearbyCraft": "furnace"}),
    ("place_furnace", {"place": "furnace"}),
    ("smelt_iron_ingot", {"nearbySmelt": "iron_ingot"}),
)
VECTOR_SIZE = 2 * len(ITEMS) + len(EQUIPPED) + 3


def minerl_action(index: int) -> dict[str, Any]:
    """The MineRL action dict of action `index` (a fresh dict; `camera` a float32 array)."""
    action = {**NOOP, **ACTIONS[index][1]}
    action["camera"] = np.array(action["camera"], np.float32)
    return action


class MineRLEnv(Adapter):
    """The DreamerV3 paper's Minecraft Diamond setting over a MineRL 0.4.x env (old gym API) made
    by `make_minerl_env`; see the module docstring for observations, actions and reward."""

    def __init__(self, task: str, cfg: EnvConfig, seed: int | None = None):
        if task not in TASKS:
            raise ConfigError(f"unknown minerl task {task!r} in env='minerl:{task}'; accepted: {', '.join(TASKS)}")
        self.length = cfg.length or DEFAULT_LENGTH
        self.env = make_minerl_env(task, cfg.size)
        self._seed = seed
        self._steps, self._pitch, self._jump_left, self._life = 0, 0.0, 0, MAX_LIFE
        self._max_counts = np.zeros(len(ITEMS), np.float32)
        self._reached: set[str] = set()
        count = gym.spaces.Box(0, np.iinfo(np.int32).max, (), dtype=np.int32)
        inputs: dict[str, gym.spaces.Space] = {
            "image": gym.spaces.Box(0, 255, (cfg.size, cfg.size, 3), dtype=np.uint8),
            "vector": gym.spaces.Box(0.0, np.inf, (VECTOR_SIZE,), dtype=np.float32),
            **{f"log_inventory_{item}": count for item in LOGGED_ITEMS},
        }
        self._init_spaces(inputs, gym.spaces.Discrete(len(ACTIONS)))

    def _inputs(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        counts = np.array([obs["inventory"].get(item, 0) for item in ITEMS], np.float32)
        self._max_counts = np.maximum(self._max_counts, counts)
        equipped = np.zeros(len(EQUIPPED), np.float32)
        kind = obs["equipped_items"]["mainhand"]["type"]
        equipped[EQUIPPED.index(kind if kind in EQUIPPED else "other")] = 1.0
        stats = obs["life_stats"]
        vitals = np.array([stats["life"] / MAX_LIFE, stats["food"] / MAX_FOOD, stats["air"] / MAX_AIR], np.float32)
        return {
            "image": np.asarray(obs["pov"], dtype=np.uint8),
            "vector": np.concatenate([counts, self._max_counts, equipped, np.clip(vitals, 0.0, 1.0)]),
            **{f"log_inventory_{item}": np.int32(obs["inventory"].get(item, 0)) for item in LOGGED_ITEMS},
        }

    def _action(self, index: int) -> dict[str, Any]:
        """The action dict with the sticky jump and the pitch limit applied."""
        action = minerl_action(index)
        if action["jump"]:
            self._jump_left = JUMP_STEPS
        if self._jump_left > 0:
            action["jump"], action["forward"] = 1, 1
            self._jump_left -= 1
        pitch = self._pitch + float(action["camera"][0])
        if abs(pitch) > PITCH_LIMIT:
            action["camera"][0] = 0.0
        else:
            self._pitch = pitch
        return action

    def _reset(self, seed):
        if seed is not None:
            self.env.seed(seed)
        obs = self.env.reset()
        self._steps, self._pitch, self._jump_left = 0, 0.0, 0
        self._life = float(obs["life_stats"]["life"])
        self._max_counts = np.zeros(len(ITEMS), np.float32)
        self._reached = {item for item in MILESTONES if obs["inventory"].get(item, 0) > 0}
        return self._inputs(obs)

    def _step(self, action):
        obs, _, done, _ = self.env.step(self._action(int(action)))
        self._steps += 1
        new = {item for item in MILESTONES if obs["inventory"].get(item, 0) > 0} - self._reached
        self._reached |= new
        life = float(obs["life_stats"]["life"])
        reward = len(new) + HEALTH_REWARD_SCALE * (life - self._life)
        self._life = life
        terminated = bool(done)
        return self._inputs(obs), reward, terminated, self._steps >= self.length and not terminated

    def close(self):
        self.env.close()


def make_minerl_env(task: str, size: int) -> Any:
    """The MineRL env (old gym API) behind `minerl:<task>`; tests replace this function.

    Runs only where minerl (0.4.x) is installed: the DreamerV3 paper's Diamond setting built from
    MineRL's herobraine EnvSpec API, a default world with mobs spawning and time passing."""
    if importlib.util.find_spec("minerl") is None:
        from dreamer.envs import INSTALL

        raise ConfigError(f"env 'minerl:{task}' needs the 'minerl' package, which is not installed; "
                          f"install: minerl ({INSTALL['minerl']})")
    # MineRL 0.4.x's life-stats and equipped-item handlers name np.int/np.float/np.bool, which
    # numpy >= 1.24 removed; give them the builtins they were aliases of.
    for name, alias in (("int", int), ("float", float), ("bool", bool)):
        if name not in np.__dict__:
            setattr(np, name, alias)
    return _diamond_spec(size).make()


def _diamond_spec(size: int) -> Any:
    """MineRL EnvSpec of the Diamond setting (no reward handlers: the adapter computes reward)."""
    from minerl.herobraine.env_specs.simple_embodiment import SimpleEmbodimentEnvSpec
    from minerl.herobraine.hero import handlers

    def choices(key: str) -> list[str]:  # an item-list action's values: none, the table's, other
        return ["none", *sorted({change[key] for _, change in ACTIONS if key in change}), "other"]

    class DiamondSpec(SimpleEmbodimentEnvSpec):  # POV, keyboard and camera come from the base class
        def create_observables(self):
            return super().create_observables() + [
                handlers.FlatInventoryObservation(list(ITEMS)),
                handlers.EquippedItemObservation(list(EQUIPPED), _default="air", _other="other"),
                handlers.ObservationFromLifeStats(),
            ]

        def create_actionables(self):
            return super().create_actionables() + [
                handlers.PlaceBlock(choices("place")),
                handlers.EquipAction(choices("equip")),
                handlers.CraftAction(choices("craft")),
                handlers.CraftNearbyAction(choices("nearbyCraft")),
                handlers.SmeltItemNearby(choices("nearbySmelt")),
            ]

        def create_rewardables(self):
            return []

        def create_agent_start(self):
            return []

        def create_agent_handlers(self):
            return []

        def create_monitors(self):
            return []

        def create_server_world_generators(self):
            return [handlers.DefaultWorldGenerator(force_reset=True)]

        def create_server_quit_producers(self):
            return [handlers.ServerQuitWhenAnyAgentFinishes()]

        def create_server_decorators(self):
            return []

        def create_server_initial_conditions(self):
            return [handlers.TimeInitialCondition(allow_passage_of_time=True),
                    handlers.SpawningInitialCondition(allow_spawning=True)]

        def is_from_folder(self, folder: str) -> bool:
            return False

        def determine_success_from_rewards(self, rewards: list) -> bool:
            return False

        def get_docstring(self) -> str:
            return "The DreamerV3 paper's Minecraft Diamond setting."

    return DiamondSpec("DreamerDiamond-v0", resolution=(size, size))
