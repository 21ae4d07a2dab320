#!/usr/bin/env python3
"""The official DreamerV3 code of 2023 (danijar/dreamerv3 at 8fa35f83, the code arXiv 2301.04104v1
describes) on one task, through its own `embodied.run.train` loop, for the parity harness.

Run it with the official code's own Python (scripts/parity/README.md says how to build it):

    OMP_NUM_THREADS=1 VENV/bin/python scripts/parity/official_2023.py --code CHECKOUT \
        --task cartpole|pendulum|crafter --logdir DIR [--losses] [--seed 0] [--key value ...]

Any official config key can be overridden (`--rssm.deter 64`, `--run.train_ratio 64`); the harness
passes the settings of `settings.py`. A logdir that holds `checkpoint.ckpt` is continued (the
official loop loads it); the files below are appended to, so a continued run keeps one record.

Written to DIR beside the official `metrics.jsonl`:
  episodes.jsonl  one line per finished episode: {"step", "return", "length", "updates"}
  losses.jsonl    with --losses, one line per update: {"update", "step", and the world-model loss
                  terms the official train step returns: image, vector, reward, cont, dyn, rep}
  perf.json       at the end: updates, seconds per update after the first, wall-clock seconds
Nothing the agent computes is changed; the wrappers only count and record.
"""
import argparse
import json
import os
import pathlib
import sys
import time
import warnings

warnings.filterwarnings('ignore', '.*box bound precision lowered.*')
warnings.filterwarnings('ignore', '.*is a deprecated alias for.*')
warnings.filterwarnings('ignore', '.*truncated to dtype int32.*')
warnings.filterwarnings('ignore', category=DeprecationWarning)

import numpy as np

# The official train metrics' loss terms (agent.py: `{name}_loss_mean`, each term's mean over the
# batch before scaling) and the harness's names for them.
LOSS_NAMES = {'image_loss_mean': 'image', 'vector_loss_mean': 'vector', 'reward_loss_mean': 'reward',
              'cont_loss_mean': 'cont', 'dyn_loss_mean': 'dyn', 'rep_loss_mean': 'rep'}
GYM_IDS = {'cartpole': 'CartPole-v1', 'pendulum': 'Pendulum-v1'}


class GymnasiumToGym:
  """A gymnasium env with the old gym API that the official FromGym expects. A time-limit
  truncation ends the episode (done) without a terminal state (is_terminal False)."""

  def __init__(self, env, seed):
    self._env = env
    self._seed = seed
    self._discrete = hasattr(env.action_space, 'n')
    self.observation_space = env.observation_space
    self.action_space = env.action_space

  def reset(self):
    obs, _ = self._env.reset(seed=self._seed)
    self._seed = None  # seed the first episode only, then keep the env's stream
    return obs

  def step(self, action):
    action = int(action) if self._discrete else np.asarray(action, np.float32)
    obs, reward, terminated, truncated, info = self._env.step(action)
    info = dict(info, is_terminal=bool(terminated))
    return obs, float(reward), bool(terminated or truncated), info

  def close(self):
    self._env.close()


def parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--code', required=True, help='checkout of danijar/dreamerv3 at 8fa35f83')
  parser.add_argument('--task', required=True, choices=['cartpole', 'pendulum', 'crafter'])
  parser.add_argument('--losses', action='store_true', help='write every update\'s loss terms')
  return parser.parse_known_args(argv)


def make_config(embodied, dreamerv3, task, overrides):
  config = embodied.Config(dreamerv3.configs['defaults'])
  if task == 'crafter':
    config = config.update(dreamerv3.configs['crafter'])
    keys = {'encoder.mlp_keys': '$^', 'encoder.cnn_keys': 'image',
            'decoder.mlp_keys': '$^', 'decoder.cnn_keys': 'image'}
  else:
    keys = {'encoder.mlp_keys': 'vector', 'encoder.cnn_keys': '$^',
            'decoder.mlp_keys': 'vector', 'decoder.cnn_keys': '$^'}
  config = config.update({
      **keys,
      'task': task,
      'jax.platform': 'cpu',
      'jax.precision': 'float32',
      'jax.prealloc': False,
      'envs.amount': 1,
      'envs.parallel': 'none',
      'run.log_every': 120,
      'run.save_every': 600,
  })
  return embodied.Flags(config).parse(overrides)


def make_env(embodied, config, task):
  from embodied.envs import from_gym
  from dreamerv3.train import wrap_env
  if task == 'crafter':
    from embodied.envs import crafter
    env = crafter.Crafter('reward', size=(64, 64), seed=config.seed)
  else:
    import gymnasium
    env = from_gym.FromGym(
        GymnasiumToGym(gymnasium.make(GYM_IDS[task]), config.seed), obs_key='vector')
  return wrap_env(env, config)


class Recorder:
  """Appends episodes and losses to the harness's files; counts updates and their seconds."""

  def __init__(self, logdir, losses, step):
    self.step = step
    self.episodes = open(logdir / 'episodes.jsonl', 'a')
    self.losses = open(logdir / 'losses.jsonl', 'a') if losses else None
    self.updates = 0
    self.first_update_s = None
    self.update_s = 0.0

  def wrap_train(self, agent):
    import jax
    train = agent.train
    def counted(*args, **kwargs):
      start = time.perf_counter()
      outs, state, mets = train(*args, **kwargs)
      jax.block_until_ready(state)
      seconds = time.perf_counter() - start
      self.updates += 1
      if self.first_update_s is None:
        self.first_update_s = seconds
      else:
        self.update_s += seconds
      if self.losses:
        terms = {short: float(np.mean(mets[name])) for name, short in LOSS_NAMES.items() if name in mets}
        self.losses.write(json.dumps({'update': self.updates, 'step': int(self.step), **terms}) + '\n')
        self.losses.flush()
      return outs, state, mets
    agent.train = counted

  def wrap_logger(self, logger):
    add = logger.add
    def added(mapping, prefix=None):
      if prefix == 'episode':
        line = {'step': int(self.step), 'return': float(mapping['score']),
                'length': int(mapping['length']), 'updates': self.updates}
        self.episodes.write(json.dumps(line) + '\n')
        self.episodes.flush()
        print(f"[episode] step {line['step']} updates {self.updates} return {line['return']:.1f}", flush=True)
      return add(mapping, prefix)
    logger.add = added

  def summary(self, wall_s):
    later = self.updates - 1
    return {'env_steps': int(self.step), 'updates': self.updates, 'first_update_s': self.first_update_s,
            'update_s': self.update_s / later if later > 0 else None, 'wall_s': wall_s}


def main(argv):
  start = time.time()
  args, overrides = parse(argv)
  code = pathlib.Path(args.code).resolve()
  # As dreamerv3/train.py: `import embodied` must be the package inside dreamerv3/.
  sys.path[:0] = [str(code), str(code / 'dreamerv3')]
  import embodied
  import dreamerv3
  from dreamerv3.train import make_replay

  config = make_config(embodied, dreamerv3, args.task, overrides)
  assert config.logdir != '/dev/null', 'pass --logdir'
  np.random.seed(config.seed)  # the prefill's RandomAgent samples from np.random
  run_args = embodied.Config(**config.run, logdir=config.logdir,
                             batch_steps=config.batch_size * config.batch_length)
  logdir = embodied.Path(config.logdir)
  logdir.mkdirs()
  config.save(logdir / 'config.yaml')

  step = embodied.Counter()
  logger = embodied.Logger(step, [
      embodied.logger.TerminalOutput(config.filter),
      embodied.logger.JSONLOutput(logdir, 'metrics.jsonl'),
  ], 1)
  recorder = Recorder(pathlib.Path(config.logdir), args.losses, step)
  recorder.wrap_logger(logger)
  env = embodied.BatchEnv([make_env(embodied, config, args.task)], parallel=False)
  replay = make_replay(config, logdir / 'replay')
  agent = dreamerv3.Agent(env.obs_space, env.act_space, step, config)
  recorder.wrap_train(agent)
  try:
    embodied.run.train(agent, env, replay, logger, run_args)
  finally:
    env.close()
  summary = recorder.summary(time.time() - start)
  print('[runner] summary', json.dumps(summary), flush=True)
  (pathlib.Path(config.logdir) / 'perf.json').write_text(json.dumps(summary, indent=2))
  sys.stdout.flush()
  os._exit(0)  # the official loop leaves its replay and batcher threads running


if __name__ == '__main__':
  main(sys.argv[1:])
