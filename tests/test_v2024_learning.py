"""The 2024 recipe's learning smoke test (the counterpart of test_learning.py's P1 bandit): it fails
when the 2024 agent stops learning, and it needs returns over more steps than imagination looks ahead.

The task: at step 0 the agent picks a lane (action 0 or 1), which then shows in the observation
with the step count; DELAY steps later the episode ends (terminal), paying 1 in lane 1 and 0 in
lane 0. Every other step pays 0, and actions after the first change nothing. With rewards r_t on
the step that reaches s_t and the continue head's discount gamma per non-terminal step, the value
of the step after the choice is gamma^(DELAY - 2) in lane 1 (the reward is DELAY - 1 steps away)
and 0 in lane 0. DELAY exceeds the imagination horizon H, so no rollout from the choice or the
step after it reaches the reward: the lanes' values, and so the actor's choice, come only through
the critic's bootstraps (and the replay-value returns along real windows), never from an imagined
reward alone.

The agent's own untrained policy (near uniform: the actor's output layer starts at 0.01 scale)
collects RANDOM_STEPS steps with its latents, as a 2024 run stores them (no prefill); then UPDATES
updates, each writing its posteriors back, as the loop does. At tiny widths it must then

    predict the final reward         reward head at the terminal step: above 0.8 in lane 1, below 0.2 in lane 0
    value the lanes apart            critic one step after the choice: lane 1 above lane 0 by more than
                                     half of the true gap gamma^(DELAY - 2) = 0.988
    choose the paying lane           the actor's probability of lane 1 at the start above 0.9

A zeroed policy loss, a flipped advantage sign, zeroed critic losses (value and replay value) or a
zeroed world-model loss each fails it (shown by breaking them on purpose). The learning rate is 5e-3
with a warm-up of 10 updates (the recipe's 4e-5 over 1,000 would not move in UPDATES updates) and the
latents are 4 x 4.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from dreamer.agent import AgentPolicy
from dreamer.config import load_config
from dreamer.envs import make_vector, spaces
from dreamer.envs.driver import Driver
from dreamer.recipes import build_agent
from dreamer.replay import Replay
from dreamer.v2024.agent import gamma_of
from tests.conftest import TINY_2024

ENV_ID = "DreamerTestsDelayedLane-v0"
DELAY = 6  # steps from the choice to the paying end; more than the horizon (TINY_2024: 4)
LANES = 3  # the lane part of the observation: undecided, lane 0, lane 1
RANDOM_STEPS = 1000
UPDATES = 300
EVAL_WINDOWS = 64
SMOKE = [*TINY_2024, "v2024.stoch=4", "v2024.optim.lr=5e-3", "v2024.optim.warmup=10", "replay.batch_size=16",
         "replay.batch_length=16"]


class DelayedLane(gym.Env):
    observation_space = gym.spaces.Box(0, 1, (LANES + DELAY + 1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, np.float32)
        obs[self.lane] = obs[LANES + self.step_count] = 1.0
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.lane, self.step_count = 0, 0  # lane 0 of the observation: not chosen yet
        return self._obs(), {}

    def step(self, action):
        if self.step_count == 0:
            self.lane = 1 + int(action)
        self.step_count += 1
        end = self.step_count == DELAY
        return self._obs(), float(end and self.lane == 2), end, False, {}


gym.register(ENV_ID, entry_point=DelayedLane)


def learn(updates: int = UPDATES, seed: int = 0) -> dict[str, float]:
    """Collection by the untrained policy, `updates` updates with write-backs, then what the agent
    predicts at the replayed steps."""
    torch.manual_seed(seed)
    cfg = load_config(SMOKE, {"env": f"gym:{ENV_ID}", "device": "cpu", "seed": seed})
    assert cfg.behavior.horizon < DELAY - 1  # no rollout from the step after the choice reaches the reward
    obs_space, act_space = spaces(cfg.env, cfg.environment)
    agent = build_agent(cfg, obs_space, act_space)
    replay = Replay(cfg.replay, obs_space, act_space, 1, seed=seed, stored=agent.stored_keys(),
                    context=agent.replay_context, online=agent.online_queue, steps=RANDOM_STEPS)
    policy = AgentPolicy(agent, "train")
    driver = Driver(make_vector(cfg.env, cfg.environment, 1, seed), seed=seed,
                    on_step=lambda step: replay.add({**step, **agent.stored_step(policy.state)}), restart=None,
                    timeout=cfg.environment.timeout)
    for _ in range(RANDOM_STEPS):
        driver.step(policy)
    driver.close()
    for _ in range(updates):
        agent.train(replay.sample())
        replay.write_back({key: value.numpy() for key, value in agent.take_latents().items()})

    batch = agent.to_tensors(replay.sample(EVAL_WINDOWS, rng=np.random.default_rng(seed)))
    with torch.no_grad():
        observed, prev_action, start = agent.learner.split_context(batch)
        _, post, _ = agent.wm.loss(observed, prev_action, start)
        feat = post.feat()  # (B, T, F)
        vector = observed["vector"]
        lane = vector[..., 1:LANES].argmax(-1)  # 0 or 1 once chosen
        step = vector[..., LANES:].argmax(-1)
        reward = agent.wm.twohot.mean(agent.wm.reward(feat))
        value = agent.wm.twohot.mean(agent.learner.critic(feat))
        lane_1 = agent.actor(feat[step == 0]).probs[:, 1]
    end, after = step == DELAY, step == 1
    return {"reward_lane0": reward[end & (lane == 0)].mean().item(),
            "reward_lane1": reward[end & (lane == 1)].mean().item(),
            "value_gap": (value[after & (lane == 1)].mean() - value[after & (lane == 0)].mean()).item(),
            "true_gap": gamma_of(cfg.behavior) ** (DELAY - 2), "choose_lane1": lane_1.mean().item()}


def test_the_2024_agent_learns_a_choice_paid_beyond_its_horizon():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation
    try:
        got = learn()
    finally:
        torch.set_num_threads(threads)
    assert got["reward_lane1"] > 0.8 and got["reward_lane0"] < 0.2, got
    assert got["value_gap"] > 0.5 * got["true_gap"], got
    assert got["choose_lane1"] > 0.9, got
