"""The parity experiments: tasks, and for each recipe and setting the flags that give both codes the
same experiment. README.md (beside this file) maps every setting key by key and says why each flag
is there; this file is the one source the harness runs from.

A setting is named by recipe and name (`2023/fast`); each has our `dreamer train` flags and the
official runner's `--key value` overrides. Task-independent flags are here; the task adds the env,
the step budget and, for image tasks, the logging that the loss curves need.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Task:
    env: str  # our --env
    steps: int  # env steps per run, random prefill included (both codes count it)
    window: int  # episodes in the final return ("mean of the last N episodes")
    losses: bool = False  # record the world model's loss terms per update (image tasks)
    plot_window: int = 20  # episodes averaged at each point of a plotted curve
    # Loss tasks: the run ends after this many updates in either recipe, so that both recipes'
    # loss curves span the same updates (the 2023 setting prefills, the 2024 one does not).
    updates: int | None = None


TASKS = {
    "cartpole": Task("gym:CartPole-v1", 6000, 20),
    # 200-step episodes: 30 in a run, so the plotted curves average 5 of them, not 20
    "pendulum": Task("gym:Pendulum-v1", 6000, 20, plot_window=5),
    # Crafter at the same widths: returns barely move in a CPU budget, the world model's losses do.
    # 100 updates: the official 2023 code takes 6-10 s per Crafter update on one thread here.
    "crafter": Task("crafter", 0, 20, losses=True, updates=100),
}

# Env steps per line of our metrics.jsonl on image tasks: the loss curves of both codes are
# compared as means over these windows of env steps (25 updates each at ratio 64 and 16 x 16 batches).
LOSS_WINDOW = 100

PREFILL = 1100  # random steps before training; the official 2023 loop prefills in blocks of 100
BATCH_SIZE, BATCH_LENGTH, TRAIN_RATIO = 16, 16, 64
# The official 2023 loop prefills until its replay holds `train_fill` windows, and a replay of n
# steps holds n - batch_length + 1 of them: this stops it at PREFILL steps, where ours stops.
OFFICIAL_2023_FILL = PREFILL - BATCH_LENGTH + 1


# Steps before the first update: the 2023 setting's random prefill; the 2024 loops (both codes)
# train once the replay holds batch_size x batch_length windows, each batch_length + 1 steps long
# (one step of context for the stored latent): 272 steps (6,000-step runs made (6000 - 272) / 4 =
# 1,432 updates here, 1,433 in the official code).
FIRST_UPDATE = {"2023": PREFILL, "2024": BATCH_SIZE * BATCH_LENGTH + BATCH_LENGTH}


def run_steps(recipe: str, task: str) -> int:
    """Env steps of one run: the task's, or for a loss task the steps before the first update and
    then 4 per update (ratio 64, 16 x 16 batches)."""
    job = TASKS[task]
    if job.updates is None:
        return job.steps
    return FIRST_UPDATE[recipe] + job.updates * BATCH_SIZE * BATCH_LENGTH // TRAIN_RATIO


@dataclasses.dataclass(frozen=True)
class Setting:
    ours: tuple[str, ...]
    official: tuple[str, ...]


def _sets(*pairs: str) -> tuple[str, ...]:
    return tuple(arg for pair in pairs for arg in ("--set", pair))


def _flags(**values: object) -> tuple[str, ...]:
    """Official overrides as `--key value`, keys written with `__` for the dots."""
    return tuple(arg for key, value in values.items() for arg in (f"--{key.replace('__', '.')}", str(value)))


# P1 at the learning table's fast settings (BENCHMARKS.md, "Learning on this CPU"): width 64, one
# hidden layer everywhere (the vector encoder and decoder too), 8 x 8 latents, 16 x 16 batches and
# learning rates about 30x the paper's, ratio 64, one env. fp32: the official code runs fp32 on a CPU.
P1_FAST = Setting(
    ours=("--recipe", "2023", "--size", "xs", "--train-ratio", str(TRAIN_RATIO), "--prefill", str(PREFILL),
          "--precision", "fp32", *_sets(
              "dims.deter=64", "dims.cnn_depth=16", "dims.units=64", "dims.layers=1",
              "encoder.mlp_units=64", "encoder.mlp_layers=1", "decoder.mlp_units=64", "decoder.mlp_layers=1",
              "rssm.stoch=8", "rssm.classes=8", f"replay.batch_length={BATCH_LENGTH}", "run.envs=1",
              "optim.world_model.lr=3e-3", "optim.actor.lr=1e-3", "optim.critic.lr=1e-3")),
    official=_flags(
        rssm__deter=64, rssm__units=64, rssm__stoch=8, rssm__classes=8,
        encoder__cnn_depth=16, decoder__cnn_depth=16,
        encoder__mlp_units=64, encoder__mlp_layers=1, decoder__mlp_units=64, decoder__mlp_layers=1,
        reward_head__units=64, reward_head__layers=1, cont_head__units=64, cont_head__layers=1,
        actor__units=64, actor__layers=1, critic__units=64, critic__layers=1,
        batch_size=BATCH_SIZE, batch_length=BATCH_LENGTH, model_opt__lr=3e-3, actor_opt__lr=1e-3, critic_opt__lr=1e-3,
        run__train_ratio=TRAIN_RATIO, run__train_fill=OFFICIAL_2023_FILL),
)

# The 2024 recipe at the learning table's fast settings: size1m, 16 x 16 batches, LaProp at 1e-3
# after 100 warm-up updates (the reference: 4e-5 after 1,000), ratio 64, one env, no prefill on
# either side. SETTINGS-2024.md maps every key; official_2024.py's base gives size1m, fp32, one env.
V2024_FAST = Setting(
    ours=("--recipe", "2024", "--size", "size1m", "--train-ratio", str(TRAIN_RATIO), "--precision", "fp32", *_sets(
        f"replay.batch_length={BATCH_LENGTH}", "run.envs=1", "v2024.optim.lr=1e-3", "v2024.optim.warmup=100")),
    official=_flags(run__train_ratio=TRAIN_RATIO, batch_length=BATCH_LENGTH, agent__opt__lr=1e-3, agent__opt__warmup=100),
)

SETTINGS = {
    ("2023", "fast"): P1_FAST,
    ("2024", "fast"): V2024_FAST,
    # Our default precision on this CPU (bf16) against the same official fp32 runs.
    ("2023", "fast-bf16"): dataclasses.replace(
        P1_FAST, ours=tuple(a if a != "fp32" else "bf16" for a in P1_FAST.ours)),
}

# Settings that change only our side are compared with the official runs of the setting named here.
OFFICIAL_RUNS = {("2023", "fast-bf16"): "fast"}


def ours_command(recipe: str, setting: str, task: str, seed: int, logdir: str) -> list[str]:
    spec, job = SETTINGS[recipe, setting], TASKS[task]
    log_every = LOSS_WINDOW if job.losses else 500
    return ["dreamer", "train", "--env", job.env, "--steps", str(run_steps(recipe, task)), "--seed", str(seed),
            "--logdir", logdir, "--device", "cpu", *spec.ours,
            "--set", f"run.log_every={log_every}", "--set", "run.video_every=0"]


def official_command(python: str, runner: str, code: str, recipe: str, setting: str, task: str, seed: int,
                     logdir: str) -> list[str]:
    spec, job = SETTINGS[recipe, setting], TASKS[task]
    extra = ["--losses", *_flags(jax__metrics_every=1)] if job.losses and recipe == "2023" else (
        ["--losses"] if job.losses else [])
    return [python, runner, "--code", code, "--task", task, "--logdir", logdir, "--seed", str(seed),
            "--run.steps", str(run_steps(recipe, task)), *spec.official, *extra]
