"""A learning smoke test: every other test checks shapes, maths or plumbing; this one fails when the
agent stops learning.

The task is a one-step bandit: a random two-way cue is shown (it pays nothing to read it), action 1
pays 1, action 0 pays 0, and the episode ends (terminal) after the one action. From 1,000 steps of
random play in the replay, a working P1 agent at tiny widths must within `UPDATES` updates

    predict the reward of each action       imagined r after a = 1 above 0.8, after a = 0 below 0.2
    value the start state                    critic's mean above 0.7 (the best policy earns 1)
    choose the paying action                 the actor's mode is action 1 in 95% of start states

A broken actor loss, critic loss, return normalisation or world-model gradient each fails it
(shown by breaking them on purpose: `scripts/learning_breakage.py`). The world model's latents are
4 x 4 and the learning rates 3e-3 (world model, critic) and 1e-3 (actor) so that this takes a few
hundred updates, not the thousands the paper's settings need.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from dreamer.agent import Agent
from dreamer.config import load_config
from dreamer.envs import make_vector, spaces
from dreamer.envs.driver import Driver, random_policy
from dreamer.replay import Replay
from tests.conftest import TINY

ENV_ID = "DreamerTestsBandit-v0"
RANDOM_STEPS = 1000
UPDATES = 400
SMOKE = [*TINY, "rssm.stoch=4", "rssm.classes=4", "optim.world_model.lr=3e-3", "optim.actor.lr=1e-3",
         "optim.critic.lr=3e-3", "replay.batch_size=16", "replay.batch_length=16"]


class Bandit(gym.Env):
    observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def _cue(self) -> np.ndarray:
        return np.eye(2, dtype=np.float32)[self.np_random.integers(2)]

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self._cue(), {}

    def step(self, action):
        return self._cue(), float(int(action) == 1), True, False, {}


gym.register(ENV_ID, entry_point=Bandit)


def learn(updates: int = UPDATES, seed: int = 0) -> dict[str, float]:
    """Random play into a replay, `updates` updates, then what the agent predicts at start states."""
    torch.manual_seed(seed)
    cfg = load_config(SMOKE, {"env": f"gym:{ENV_ID}", "device": "cpu", "seed": seed})
    obs_space, act_space = spaces(cfg.env, cfg.environment)
    agent = Agent(cfg, obs_space, act_space)
    replay = Replay(cfg.replay, obs_space, act_space, 1, seed=seed, steps=RANDOM_STEPS)
    driver = Driver(make_vector(cfg.env, cfg.environment, 1, seed), seed=seed, on_step=replay.add, restart=None,
                    timeout=cfg.environment.timeout)
    play = random_policy(act_space, 1, np.random.default_rng(seed))
    for _ in range(RANDOM_STEPS):
        driver.step(play)
    driver.close()
    for _ in range(updates):
        agent.train(replay.sample())

    batch = agent.to_tensors(replay.sample())
    with torch.no_grad():
        _, post, _ = agent.wm.loss(batch)
        start = post.map(lambda x: x[batch["is_first"].bool()])  # (N, ...) states where the action is due
        rewards = []
        for action in (0, 1):
            onehot = torch.zeros(len(start.deter), 2)
            onehot[:, action] = 1.0
            after = agent.wm.rssm.img_step(start, onehot)
            rewards.append(agent.wm.twohot.mean(agent.wm.reward(after.feat())).mean().item())
        feat = start.feat()
        value = agent.wm.twohot.mean(agent.behavior.critic(feat)).mean().item()
        paying = (agent.behavior.actor(feat).mode().argmax(-1) == 1).float().mean().item()
    return {"reward_a0": rewards[0], "reward_a1": rewards[1], "value": value, "paying_action": paying}


def failures(got: dict[str, float]) -> list[str]:
    """The criteria `learn()`'s numbers miss (none: the agent learnt). `scripts/learning_breakage.py`
    judges each deliberately broken agent by these."""
    missed = []
    if not (got["reward_a1"] > 0.8 and got["reward_a0"] < 0.2):
        missed.append("the imagined rewards do not tell the actions apart")
    if not got["value"] > 0.7:
        missed.append("the critic does not value the start state")
    if not got["paying_action"] > 0.95:
        missed.append("the actor does not choose the paying action")
    return missed


def test_the_agent_learns_a_one_step_bandit():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation
    try:
        got = learn()
    finally:
        torch.set_num_threads(threads)
    assert failures(got) == [], got


def test_failures_name_each_missed_criterion():
    learnt = {"reward_a0": 0.0, "reward_a1": 1.0, "value": 0.97, "paying_action": 1.0}
    assert failures(learnt) == []
    assert len(failures({**learnt, "reward_a0": 0.3})) == 1
    assert len(failures({**learnt, "value": 0.5, "paying_action": 0.9})) == 2
