#!/usr/bin/env python3
"""The official DreamerV3 code (danijar/dreamerv3, the 2024 recipe, JAX) on a gymnasium task or
Crafter, through its own training loop, with per-episode and per-update records for comparison
with this package (issue 28). Run it with the official venv's python (OFFICIAL-2024.md):

    OMP_NUM_THREADS=1 XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
      /work/official/2024/venv/bin/python scripts/parity/official_2024.py \\
        --code /work/official/2024/src --task cartpole|pendulum|crafter --logdir DIR --seed N \\
        [--losses] [any official config key: --run.steps 6000 --run.train_ratio 64 --batch_length 16 ...]

What runs is the official `embodied.run.train` (what `dreamerv3/main.py` calls for `script:
train`) with the official `make_agent`, `make_replay`, `make_stream`, `make_logger` and
`wrap_env`. This file only builds the config, builds the gymnasium envs (the official code has
no gymnasium adapter: its `FromGym` speaks the old gym API, so a small shim sits in between),
seeds numpy and the envs, and records what it sees; nothing it adds changes what is computed.

Config: the official `defaults`, then the official `crafter` preset for Crafter, then `size1m`,
then the settings below (BASE), then the command line. Keys accept `--key value` exactly as the
official `main.py` does.

Tasks:
  cartpole  gymnasium CartPole-v1 (discrete); the 500-step TimeLimit truncation becomes is_last
            without is_terminal (termination stays terminal). Observation key `vector`.
  pendulum  gymnasium Pendulum-v1 (continuous, 1-d action in [-2, 2], rescaled from [-1, 1] by the
            official NormalizeAction); the 200-step truncation likewise. Key `vector`.
  crafter   the official embodied/envs/crafter.py (crafter.Env, 64x64 image, reward task), seeded.

Outputs in LOGDIR, beside the official ones (config.yaml, metrics.jsonl, scores.jsonl, ckpt/,
replay/):
  episodes.jsonl  one line per finished episode: {"step", "return", "length", "updates"}.
                  step: env steps so far, the official counter (it counts every transition the
                  driver sees, the reset observation of each episode included). length: the
                  episode's env.step calls, i.e. the official episode/length minus 1 (the official
                  count includes the reset observation). updates: updates dispatched so far.
  losses.jsonl    with --losses, one line per update: {"update", "step", <world-model terms>}.
                  The official train step returns its metrics one update late, so the line of
                  update n is written when update n+1 is dispatched (the last update of a run
                  has no line). Terms are the unscaled batch means of the official train/loss/*.
  perf.json       at the end: updates, seconds per update after the first, wall seconds, ...
Both jsonl files are appended to, so a resumed run continues them; a resumed start first drops
their lines past the restored checkpoint (episodes after its step, updates after its update
count), which the killed start wrote after its last save and the resumed one plays again.

Resume: the official loop restores LOGDIR/ckpt (agent, replay, step counter) when
LOGDIR/ckpt/latest exists. It saves once at the start and then every run.save_every seconds
(default 900), not at the end, so a killed run continues from its last save.
"""

import argparse
import json
import os
import pathlib
import sys
import time
import warnings
from functools import partial as bind

import numpy as np

warnings.filterwarnings('ignore', '.*box bound precision lowered.*')
warnings.filterwarnings('ignore', category=DeprecationWarning)

TASKS = {
    'cartpole': 'gym_CartPole-v1',
    'pendulum': 'gym_Pendulum-v1',
    'crafter': 'crafter_reward',
}

# Laid over `defaults` (+ `crafter`) + `size1m`; the command line wins over these.
BASE = {
    'jax.platform': 'cpu',
    'jax.compute_dtype': 'float32',  # fp32 compute (the official default is bfloat16)
    'jax.prealloc': False,
    'run.envs': 1,
    'run.eval_envs': 0,  # unused by script=train; no eval envs
    'run.usage.nvsmi': False,  # no nvidia-smi here (it only logs usage)
    'logger.outputs': ['jsonl'],  # no scope / tensorboard outputs
}

# Official train/loss/<name> -> the short names of losses.jsonl. The official `loss/<key>` holds
# the unscaled mean over the batch of each term (agent.py: metrics['loss/k'] = losses[k].mean()):
#   image  <- loss/image   image reconstruction (sum over pixels and channels), Crafter
#   vector <- loss/vector  vector reconstruction (sum over dimensions, symlog space), gym tasks
#   reward <- loss/rew     two-hot reward cross-entropy
#   cont   <- loss/con     continue cross-entropy (soft target gamma * (1 - terminal))
#   dyn    <- loss/dyn     max(free_nats, KL(sg(post) || prior)), summed over latents
#   rep    <- loss/rep     max(free_nats, KL(post || sg(prior))), summed over latents
LOSS_NAMES = {'image': 'image', 'vector': 'vector', 'rew': 'reward', 'con': 'cont', 'dyn': 'dyn',
              'rep': 'rep'}


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--code', required=True, help='the official checkout (holds dreamerv3/, embodied/)')
  parser.add_argument('--task', required=True, choices=sorted(TASKS))
  parser.add_argument('--losses', action='store_true', help='write losses.jsonl')
  args, rest = parser.parse_known_args(argv)
  for required in ('--logdir', '--seed'):
    if not any(x == required or x.startswith(required + '=') for x in rest):
      parser.error(f'{required} is required')
  return args, rest


class GymnasiumToGym:
  """A gymnasium env with the old gym API that the official FromGym expects: reset() -> obs and
  step() -> (obs, reward, done, info). A TimeLimit truncation gives done=True with
  info['is_terminal']=False, which FromGym turns into is_last=True, is_terminal=False."""

  def __init__(self, env, seed):
    import gymnasium
    self._env = env
    self._seed = seed
    self._discrete = isinstance(env.action_space, gymnasium.spaces.Discrete)
    self.observation_space = env.observation_space
    self.action_space = env.action_space

  def reset(self):
    obs, _ = self._env.reset(seed=self._seed)
    self._seed = None  # seeds the first episode; later ones continue the env's own stream
    return obs

  def step(self, action):
    if self._discrete:
      action = int(action)
    else:
      action = np.asarray(action, self._env.action_space.dtype)
    obs, reward, terminated, truncated, info = self._env.step(action)
    info = dict(info)
    info['is_terminal'] = bool(terminated)
    return obs, float(reward), bool(terminated or truncated), info

  def close(self):
    self._env.close()


def env_seed(seed, index, start):
  """The official `use_seed` formula, hash((seed, index)) % (2**32 - 1), for a run's first start;
  a resumed start mixes in its number so that it does not replay the first start's episodes."""
  key = (seed, index) if start == 0 else (seed, index, start)
  return hash(key) % (2 ** 32 - 1)


def main(argv):
  t_start = time.time()
  args, rest = parse_args(argv)
  code = pathlib.Path(args.code).resolve()
  # As dreamerv3/main.py: the checkout's root first, so `import embodied` is the checkout's.
  sys.path.insert(0, str(code))
  import elements
  import embodied
  import portal
  import ruamel.yaml as yaml
  from dreamerv3 import main as official

  # Config, as dreamerv3/main.py builds it, with --configs fixed by the task.
  configs = yaml.YAML(typ='safe').load((code / 'dreamerv3' / 'configs.yaml').read_text())
  config = elements.Config(configs['defaults'])
  presets = ['crafter', 'size1m'] if args.task == 'crafter' else ['size1m']
  for name in presets:
    config = config.update(configs[name])
  # `jax.profiler` is an option of embodied.jax.Agent (default True: a JAX trace of updates
  # 100-120 into the logdir) that configs.yaml does not list; off here so that it does not
  # slow those updates. It stays a flag: --jax.profiler True turns it back on.
  config = elements.Config({**config.flat, 'jax.profiler': False})
  config = config.update({**BASE, 'task': TASKS[args.task]})
  config = elements.Flags(config).parse(rest)
  config = config.update(logdir=config.logdir.format(timestamp=elements.timestamp()))
  # The replay holds windows of consec_train * batch_length + replay_context steps, and the report
  # stream (diagnostics only, no update) refuses windows longer than that: a shorter batch_length
  # needs a report_length no longer than it. Shorten it unless the command line set it.
  if config.report_length > config.batch_length and not any(
      x == '--report_length' or x.startswith('--report_length=') for x in rest):
    print(f'[runner] report_length {config.report_length} -> {config.batch_length} (<= batch_length)')
    config = config.update(report_length=config.batch_length)
  assert config.script == 'train', 'this runner runs script=train only'
  assert config.replicas == 1, 'one replica only'

  logdir = elements.Path(config.logdir)
  logdir.mkdir()
  resumed = (logdir / 'ckpt' / 'latest').exists()
  starts_file = pathlib.Path(str(logdir)) / 'runner_starts.txt'
  start = int(starts_file.read_text()) if starts_file.exists() else 0
  starts_file.write_text(str(start + 1))
  config.save(logdir / 'config.yaml')
  print(f'[runner] task {args.task} ({config.task}), logdir {logdir}, seed {config.seed}, '
        f'{"resuming from its checkpoint" if resumed else "fresh"} (start {start})', flush=True)

  np.random.seed(config.seed)

  # XLA_FLAGS: embodied.jax.internal.setup replaces the environment's XLA_FLAGS with its own
  # (GPU-only flags on this platform) before the backend starts; keep the caller's flags too
  # (e.g. the single-thread CPU flags) by putting them first again.
  import embodied.jax.internal as internal
  caller_flags = os.environ.get('XLA_FLAGS', '')
  original_setup = internal.setup
  def setup(*a, **k):
    original_setup(*a, **k)
    os.environ['XLA_FLAGS'] = ' '.join(x for x in (caller_flags, os.environ.get('XLA_FLAGS', '')) if x)
  internal.setup = setup

  # As dreamerv3/main.py before it calls the loop.
  def init():
    elements.timer.global_timer.enabled = config.logger.timer
  portal.setup(errfile=config.errfile and logdir / 'error', clientkw=dict(logging_color='cyan'),
               serverkw=dict(logging_color='cyan'), initfns=[init], ipv6=config.ipv6)

  official_make_env = official.make_env
  def make_env(config, index, **overrides):
    seed = env_seed(config.seed, index, start)
    suite, task = config.task.split('_', 1)
    if suite == 'gym':
      import gymnasium
      from embodied.envs import from_gym
      env = gymnasium.make(task)  # with its registered TimeLimit (500 / 200 steps)
      env = from_gym.FromGym(GymnasiumToGym(env, seed), obs_key='vector')
      return official.wrap_env(env, config)
    return official_make_env(config, index, seed=seed, **overrides)
  # make_agent looks make_env up in the official module (it builds env 0 for the spaces).
  official.make_env = make_env

  perf = dict(resumed=resumed, start=start, agent_init_s=None, first_policy_call_s=None,
              first_train_call_s=None, train_s_after_first=0.0, train_calls=0)
  held = {}
  files = {}

  def open_outputs():
    """Open episodes.jsonl (and losses.jsonl) for appending, once the loop has restored its
    checkpoint (before the first policy step). Lines past the restored state (episodes after its
    step, updates after its update count), left by a start that went on after its last save, are
    dropped first, so that no step or update appears twice."""
    if files:
      return
    step, updates = int(held['logger'].step), int(held['agent'].n_updates)
    for name, key, last in (('episodes', 'step', step), ('losses', 'update', updates)):
      if name == 'losses' and not args.losses:
        continue
      path = pathlib.Path(str(logdir)) / f'{name}.jsonl'
      if path.exists():
        lines = [x for x in path.read_text().splitlines() if x.strip()]
        kept = [x for x in lines if json.loads(x)[key] <= last]
        if len(kept) < len(lines):
          print(f'[runner] {name}.jsonl: dropped {len(lines) - len(kept)} lines past the checkpoint '
                f'({key} > {last})', flush=True)
          tmp = path.with_suffix('.jsonl.tmp')
          tmp.write_text(''.join(x + '\n' for x in kept))
          tmp.replace(path)
      files[name] = open(path, 'a')

  def make_agent():
    import jax
    t = time.time()
    agent = official.make_agent(config)  # builds, initialises and compiles train and report
    perf['agent_init_s'] = time.time() - t
    print(f'[runner] agent init (parameter init + train/report compile): {perf["agent_init_s"]:.1f}s; '
          f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}', flush=True)
    held['agent'] = agent
    original_policy = agent.policy
    def policy(*a, **k):
      if perf['first_policy_call_s'] is not None:
        return original_policy(*a, **k)
      open_outputs()
      t = time.perf_counter()
      out = original_policy(*a, **k)
      perf['first_policy_call_s'] = time.perf_counter() - t
      print(f'[runner] first policy call (compile + 1 step): {perf["first_policy_call_s"]:.1f}s', flush=True)
      return out
    agent.policy = policy
    original_train = agent.train
    def train(carry, data):
      step = int(held['logger'].step)
      t = time.perf_counter()
      carry, outs, mets = original_train(carry, data)
      jax.block_until_ready(carry)  # timing only: the update itself is done when its outputs are
      dt = time.perf_counter() - t
      perf['train_calls'] += 1
      if perf['train_calls'] == 1:
        perf['first_train_call_s'] = dt
        print(f'[runner] first update: {dt:.2f}s', flush=True)
      else:
        perf['train_s_after_first'] += dt
      # The official train returns the metrics of the previous update (embodied/jax/agent.py).
      if args.losses and mets and 'prev' in held:
        open_outputs()
        update, at_step = held['prev']
        line = {'update': update, 'step': at_step}
        for name, short in LOSS_NAMES.items():
          if f'loss/{name}' in mets:
            line[short] = float(mets[f'loss/{name}'])
        files['losses'].write(json.dumps(line) + '\n')
        files['losses'].flush()
      held['prev'] = (int(agent.n_updates), step)
      return carry, outs, mets
    agent.train = train
    return agent

  def make_logger():
    logger = official.make_logger(config)
    held['logger'] = logger
    original_add = logger.add
    def add(mapping, prefix=None):
      if prefix == 'episode':
        agent = held['agent']
        line = {'step': int(logger.step), 'return': float(mapping['score']),
                'length': int(mapping['length']) - 1,
                'updates': int(agent.n_updates)}
        open_outputs()
        files['episodes'].write(json.dumps(line) + '\n')
        files['episodes'].flush()
        print(f'[episode] step {line["step"]} return {line["return"]:.1f} length {line["length"]} '
              f'updates {line["updates"]}', flush=True)
      return original_add(mapping, prefix)
    logger.add = add
    return logger

  run_args = elements.Config(
      **config.run, replica=config.replica, replicas=config.replicas, logdir=config.logdir,
      batch_size=config.batch_size, batch_length=config.batch_length,
      report_length=config.report_length, consec_train=config.consec_train,
      consec_report=config.consec_report, replay_context=config.replay_context)

  embodied.run.train(
      make_agent,
      bind(official.make_replay, config, 'replay'),
      bind(make_env, config),
      bind(official.make_stream, config),
      make_logger,
      run_args)

  calls = perf['train_calls']
  summary = {
      'task': args.task,
      'env_steps': int(held['logger'].step),
      'updates': int(held['agent'].n_updates),
      'updates_this_start': calls,
      'resumed': perf['resumed'],
      'agent_init_s': perf['agent_init_s'],
      'first_policy_call_s': perf['first_policy_call_s'],
      'first_train_call_s': perf['first_train_call_s'],
      's_per_update_after_first': perf['train_s_after_first'] / (calls - 1) if calls > 1 else None,
      'wall_s': time.time() - t_start,
  }
  print('[runner] summary', json.dumps(summary), flush=True)
  (pathlib.Path(str(logdir)) / 'perf.json').write_text(json.dumps(summary, indent=2) + '\n')
  for file in files.values():
    file.close()
  sys.stdout.flush()
  sys.stderr.flush()
  # The loop leaves its prefetch and replay-saver threads running; do not wait for them.
  os._exit(0)


if __name__ == '__main__':
  main(sys.argv[1:])
