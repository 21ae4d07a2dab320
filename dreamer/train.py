"""The training loop: envs -> driver -> replay -> agent.train -> logger / checkpoint.

    prefill   `run.prefill` steps of random actions go to the replay first (recipe 2023; the 2024
              recipe has none and trains once the replay holds batch_size x batch_length windows);
    collect   every iteration steps all envs once with the policy and stores the steps;
    train     the train-ratio counter says how many updates the new steps pay for (design section 6);
              they are launched before the envs step, on batches drawn in the background: the
              first while the envs stepped last time (so from the replay without this step's
              observation), the others while the earlier updates run; an agent that stores latents
              with its steps (recipe 2024) gets each update's posteriors written back to the
              replay before the next iteration's batches are drawn;
    log       every `run.log_every` steps: update metrics, episodes, throughput;
    save      every `run.save_every` steps or `run.save_every_seconds`, whichever comes first,
              at the end, and on SIGINT/SIGTERM (`dreamer/stopping.py`): an atomic checkpoint.

A logdir that holds a checkpoint is continued: model, optimisers, ratio counter, step counters, every
RNG, the policy's recurrent state, the unlogged metric sums and the envs themselves (pickled, when
they run in this process) come back from the checkpoint, and the replay from its chunks on disk.
A replay that lost steps (damaged chunks set aside, `replay/` deleted) is refilled by the policy
before training goes on, so a damaged replay never ends a run.
With one env on CPU a run killed at any moment and continued is the run that was never stopped;
with envs in subprocesses they start new episodes, and the step counter goes on unchanged.

Under `torchrun` every rank runs this loop with its own envs, replay (`replay/`, `replay-rank1/`, ...)
and seed; step counters and the train ratio count all ranks' steps, so every rank makes the same
updates; finished episodes are gathered to rank 0, which alone writes logs and checkpoints.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

from dreamer import checkpoint, compiler, distributed, precision, provenance, render
from dreamer.agent import AgentPolicy, resolve_device
from dreamer.config import Config, ConfigError, continued_config, from_yaml, identity, load_config, to_yaml
from dreamer.console import Console, log, setup_logging
from dreamer.envs import make_vector, spaces
from dreamer.envs.crafter_env import crafter_score
from dreamer.envs.driver import Driver, random_policy
from dreamer.errors import TrainingError
from dreamer.evaluate import play
from dreamer.imagine import open_loop
from dreamer.logging import Logger, Mean
from dreamer.nets.rssm import Latent
from dreamer.overlap import BusyClock, HostCopy
from dreamer.recipes import build_agent
from dreamer.replay import Replay, TrainRatio
from dreamer.stopping import StopRequest, Stopped


@dataclasses.dataclass
class Progress:
    """Counters of a run, saved in its checkpoints."""

    step: int = 0  # policy steps, summed over envs
    episodes: int = 0
    achievements: dict[str, int] = dataclasses.field(default_factory=dict)  # episodes that unlocked each
    last_return: float = float("nan")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states(device: torch.device) -> dict[str, Any]:
    """The RNG states of this process, as CPU tensors: Python, NumPy, torch's CPU generator and
    the generator of `device` alone when it is a GPU (not of every visible GPU)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": cuda}


def set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    """Restore `rng_states`; the saved GPU state goes to `device`, whichever GPU index it has now."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])  # a CPU byte tensor: checkpoints are read onto the CPU
    if device.type == "cuda" and isinstance(states["cuda"], torch.Tensor):
        torch.cuda.set_rng_state(states["cuda"], device)


def record_episodes(episodes: list[dict[str, float]], progress: Progress) -> dict[str, float]:
    """Count finished episodes into `progress`; return their mean return and length."""
    for ep in episodes:
        progress.episodes += 1
        progress.last_return = ep["return"]
        for key, count in ep.items():
            if key.startswith("achievement_"):
                progress.achievements[key] = progress.achievements.get(key, 0) + int(count > 0)
    return {"episode/return": float(np.mean([ep["return"] for ep in episodes])),
            "episode/length": float(np.mean([ep["length"] for ep in episodes]))}


def cumulative_metrics(progress: Progress) -> dict[str, float]:
    """Episodes so far and, for Crafter, each achievement's success rate and the score over them."""
    out = {"episode/count": float(progress.episodes)}
    if progress.episodes and progress.achievements:
        rates = {k: 100.0 * v / progress.episodes for k, v in progress.achievements.items()}
        out.update({f"achievements/{k[len('achievement_'):]}": r for k, r in rates.items()})
        out["episode/score"] = crafter_score(np.array(list(rates.values())))
    return out


class Trainer:
    """Owns the parts of a run and the steps of its loop; `run()` trains to `cfg.run.steps`."""

    refill_until = 0  # no update until a step past this one: the replay refills (`_pause_for_lost_replay`)

    def __init__(self, cfg: Config, stop: StopRequest | None = None):
        self.cfg = cfg
        self.stop = stop or StopRequest()
        self.logdir = Path(cfg.logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.ranks, self.device = distributed.setup(cfg.device, cfg.run.process_group_timeout,
                                                    cfg.run.compile_threads)
        seed = self.ranks.seed(cfg.seed)
        seed_everything(seed)
        obs_space, act_space = spaces(cfg.env, cfg.environment)
        self.agent = build_agent(cfg, obs_space, act_space, self.device)
        replay_dir = Path(cfg.replay.directory) if cfg.replay.directory else self.logdir / "replay"
        if not self.ranks.main:
            replay_dir = replay_dir.with_name(f"{replay_dir.name}-rank{self.ranks.rank}")
        self.replay = Replay(cfg.replay, obs_space, act_space, cfg.run.envs, replay_dir, seed,
                             stored=self.agent.stored_keys(), context=self.agent.replay_context,
                             online=self.agent.online_queue, steps=cfg.run.steps)
        self.steps_per_iteration = cfg.run.envs * self.ranks.world  # all ranks' policy steps
        batch_steps = cfg.replay.batch_size * cfg.replay.batch_length * self.ranks.world
        self.ratio = TrainRatio(cfg.run.train_ratio, batch_steps)
        self.progress = Progress()
        resumed = self._restore()  # (path, payload) of the checkpoint continued, or None
        self.resumed_from = resumed[0] if resumed else None
        if self.ranks.world > 1:
            self.agent.distribute()
        self.logger = None
        if self.ranks.main:
            computes = precision.describe(cfg.run.precision, self.device)
            used = f"# this process: device {self.device}, precision {computes} (run.precision: {cfg.run.precision})\n"
            checkpoint.atomic_write(self.logdir / CONFIG_FILE, lambda f: f.write((used + to_yaml(cfg)).encode()))
            provenance.record_start(self.logdir, self.progress.step, self.device, computes, self.ranks.world)
            self.logger = Logger(self.logdir, resume_step=self.progress.step)
        def make_envs(env_seed: int):
            with self.stop.children_ignore_signals():
                return make_vector(cfg.env, cfg.environment, cfg.run.envs, seed=env_seed)

        self.driver = Driver(make_envs(seed + self.progress.step), seed=seed + self.progress.step,
                             on_step=self.store, restart=make_envs, timeout=cfg.environment.timeout)
        self.random_rng = np.random.default_rng(seed)
        self.video_rng = np.random.default_rng([seed, 1])  # videos never touch the training RNGs
        self.random = random_policy(act_space, cfg.run.envs, self.random_rng)
        self.policy = AgentPolicy(self.agent, "train")
        self.metrics = Mean(totals=("train/skipped_updates",))
        self.finished: list[tuple[int, dict[str, float]]] = []  # (step, episode) not yet recorded
        self.episode_stats = Mean()  # of the episodes recorded since the last log write
        self.timers = {"env": 0.0, "train": 0.0, "env_steps": 0, "updates": 0}
        self.busy = BusyClock(self.device)
        self.pending: HostCopy[torch.Tensor] | None = None  # the last update's metrics, not read yet
        self.write_backs: deque[HostCopy[dict[str, torch.Tensor]]] = deque()  # 2024 latents on their way
        self.logged_step = -1
        self.nonfinite = 0  # updates skipped in a row
        self.counting = False  # whether the ratio counts the next iteration's steps (`plan`)
        self.saved_step = -1
        self.saved_time = time.monotonic()
        if resumed:
            self._restore_loop(resumed[1])
        self.plan()  # a continued run draws the batch the stopped one had drawn
        if self.ranks.main:
            self.describe()

    def describe(self) -> None:
        """The start block: what is trained where, and where to watch it."""
        cfg, counts = self.cfg, self.agent.parameter_counts()
        computes = precision.describe(cfg.run.precision, self.device)
        compiled = compiler.describe(self.agent.compiled, self.device)
        log.info(f"training {cfg.env}, size {cfg.size} ({counts['total']:,} parameters) on {self.device} "
                 f"({self.ranks.world} process{'es' if self.ranks.world > 1 else ''}), precision {computes}, "
                 f"compile {compiled}")
        log.info(f"train ratio {cfg.run.train_ratio:g}, {cfg.run.steps:,} steps, {cfg.run.envs} env(s) per "
                 f"process, seed {cfg.seed}, logdir {self.logdir}")
        if self.resumed_from is not None:
            log.info(f"continuing from {self.resumed_from} at step {self.progress.step:,}; replay restored: "
                     f"{len(self.replay):,} steps")
        log.info(f"watch it: tensorboard --logdir {self.logdir}")

    # -- checkpoints ------------------------------------------------------------------------------
    def _restore(self) -> tuple[Path, dict[str, Any]] | None:
        """The learning side of the newest checkpoint: model, optimisers, counters, RNGs, replay."""
        if self.ranks.main:
            checkpoint.remove_temp_files(self.logdir / "checkpoints")  # left by a killed run
        # On the CPU: RNG states must stay there; the model and optimiser states are copied onto
        # the device by `load_state_dict`.
        found = checkpoint.load_latest_on_all_ranks(self.logdir / "checkpoints")
        if found is None:
            return None
        path, payload = found
        checkpoint.require_training_keys(path, payload)
        checkpoint.check_compatible(payload["identity"], identity(self.cfg))
        with checkpoint.reading(path):  # a part missing or malformed: one line naming the file
            self.agent.load_state_dict(payload["agent"])
            for name, optimizer in self.agent.optimizers().items():
                optimizer.load_state_dict(payload["optimizers"][name])
            self.ratio.load_state_dict(payload["ratio"])
            self.progress = Progress(**payload["progress"])
            if len(payload["ranks"]) != self.ranks.world:
                raise checkpoint.CheckpointError(
                    f"{path} was saved by {len(payload['ranks'])} ranks; this run has {self.ranks.world}; "
                    f"accepted: the same number of processes")
            local = payload["ranks"][self.ranks.rank]
            set_rng_states(local["rng"], self.device)
            self.replay.load(local["replay_written"])
            self.replay.load_state_dict(local["replay"])
            self._pause_for_lost_replay(payload, local)
        return path, payload

    def _pause_for_lost_replay(self, payload: dict[str, Any], local: dict[str, Any]) -> None:
        """Say how many steps the restored replay lost (damaged chunks set aside, a deleted
        `replay/`) and, when what is left is too little to train on, pause training until the
        replay again holds what it needs (`refill_until`): recipe 2023 `run.prefill` new steps,
        the 2024 recipe its minimum windows. The agent is trained already, so the new steps come
        from its policy, not from random actions; the ratio does not count them, so no update is
        owed for them, and the step counter goes on unchanged. Every rank pauses to the same step
        (the latest any rank needs), so all ranks keep making the same updates. A checkpoint
        written during the pause keeps it (`refill_until` in the payload)."""
        replay = self.replay
        held = local.get("replay_stored", local["replay_written"])  # earlier versions: what was written
        expected = [min(int(steps), replay.per_env) for steps in held[: replay.envs]]
        lost = sum(max(want - int(have), 0) for want, have in zip(expected, replay.count))
        if lost:
            log.info(f"replay {replay.directory}: {lost:,} of the {sum(expected):,} steps it held at the "
                     f"checkpoint are lost, {len(replay):,} restored")
        needed = self._refill_steps() if lost else 0
        if self.ranks.world > 1:
            needed = int(distributed.maximum(torch.tensor([needed], device=self.device)).item())
        self.refill_until = max(int(payload.get("refill_until", 0)), self.progress.step + needed if needed else 0)
        if self.refill_until > self.progress.step and self.ranks.main:
            log.info(f"training pauses until step {self.refill_until:,}: the policy collects "
                     f"{self.refill_until - self.progress.step:,} new steps for the replay first")

    def _refill_steps(self) -> int:
        """Policy steps (all ranks together) to collect before the replay again holds what training
        needs, 0 when it does: the steps the prefill gave this rank's replay and the windows the
        agent trains from (the 2024 minimum; one window for recipe 2023, whose prefill gives more)."""
        run, replay = self.cfg.run, self.replay
        windows = max(self.agent.min_replay_windows, 1)
        prefilled = min(-(-run.prefill // self.ranks.world), replay.per_env * replay.envs)
        if len(replay) >= prefilled and replay.items() >= windows:
            return 0
        return max(run.prefill, replay.steps_until(windows) * self.steps_per_iteration)

    def _restore_loop(self, payload: dict[str, Any]) -> None:
        """The collection side of a checkpoint: envs, policy state, prefill RNG, unlogged sums."""
        with checkpoint.reading(self.resumed_from):
            local = payload["ranks"][self.ranks.rank]
            if self.driver.load_state_dict(local["driver"]) and local["policy"] is not None:
                latent, action = local["policy"]
                self.policy.state = (Latent(*latent).map(lambda x: x.to(self.device)), action.to(self.device))
            self.random_rng.bit_generator.state = local["random_rng"]
            self.video_rng.bit_generator.state = local["video_rng"]
            self.metrics.load_state_dict(payload["metrics"])
            self.episode_stats.load_state_dict(payload["episode_stats"])
            self.logged_step, self.nonfinite = payload["logged_step"], payload["nonfinite"]
        self.saved_step = self.progress.step

    def save(self) -> Path | None:
        """Every rank flushes its replay; rank 0 writes one checkpoint holding all ranks' RNG and
        replay states (returns its path; None on other ranks)."""
        self.record_pending()
        self.replay.settle()  # the next iteration's batch, drawn meanwhile, has taken its write-backs
        self.apply_write_backs()
        self.gather_episodes()
        self.replay.flush()
        policy_state = None
        if self.policy.state is not None:  # (RSSM state, previous action), gathered through the host
            latent, action = self.policy.state
            policy_state = (tuple(latent.map(lambda x: x.cpu())), action.cpu())  # plain tuples: loads safely
        local = {"rng": rng_states(self.device), "replay": self.replay.state_dict(),
                 "replay_written": self.replay.written.tolist(), "replay_stored": self.replay.count.tolist(),
                 "driver": self.driver.state_dict(),
                 "policy": policy_state, "random_rng": self.random_rng.bit_generator.state,
                 "video_rng": self.video_rng.bit_generator.state}
        ranks = distributed.gather_to_main(local)  # pickled envs travel to rank 0 only
        self.saved_step, self.saved_time = self.progress.step, time.monotonic()
        if not self.ranks.main:
            return None
        payload = {
            "identity": identity(self.cfg),
            "config": to_yaml(self.cfg),
            "agent": self.agent.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.agent.optimizers().items()},
            "ratio": self.ratio.state_dict(),
            "progress": dataclasses.asdict(self.progress),
            "metrics": self.metrics.state_dict(),
            "episode_stats": self.episode_stats.state_dict(),
            "logged_step": self.logged_step,
            "nonfinite": self.nonfinite,
            "refill_until": self.refill_until,
            "ranks": ranks,
        }
        return checkpoint.save(self.logdir / "checkpoints", self.progress.step, payload)

    # -- the loop ---------------------------------------------------------------------------------
    def store(self, step: dict[str, np.ndarray]) -> None:
        """A step of every env to the replay, with what the agent keeps beside it (its posterior
        after observing the step, for the 2024 recipe)."""
        self.replay.add({**step, **self.agent.stored_step(self.policy.state)})

    def iterate(self) -> None:
        """One step of every env (of every rank) and the updates it pays for. The updates are
        launched between choosing the actions and stepping the envs, so on a GPU the device trains
        while the envs step; the numbers are those of acting, stepping, then training. The
        episodes it finishes wait in `finished`."""
        prefill = self.progress.step < self.cfg.run.prefill
        start = time.perf_counter()
        episodes = self.driver.act(self.random if prefill else self.policy)
        acting = time.perf_counter() - start
        self.progress.step += self.steps_per_iteration
        self.learn()
        start = time.perf_counter()
        episodes += self.driver.advance()
        self.timers["env"] += acting + time.perf_counter() - start
        self.timers["env_steps"] += self.cfg.run.envs
        self.finished += [(self.progress.step, episode) for episode in episodes]

    def gather_episodes(self) -> None:
        """Count every rank's finished episodes into the progress; rank 0 writes them to the log."""
        gathered = distributed.gather(self.finished)
        self.finished = []
        finished = sorted((item for rank in gathered for item in rank), key=lambda item: item[0])
        for step, episode in finished:
            if self.logger:
                self.logger.episode(step, episode)
            self.episode_stats.add(record_episodes([episode], self.progress))

    def learn(self) -> None:
        """The updates the new steps pay for, launched without waiting for the device: an update's
        metrics are read once the next one is queued (`pending`), and the 2024 latents reach the
        replay before the next batch is drawn, copied to the host meanwhile (`dreamer.overlap`).
        Then the next iteration's updates are planned."""
        self.apply_write_backs()  # (when no batch was prefetched) the replay then holds them
        count = self.ratio(self.steps_per_iteration) if self.counting else 0
        if count:
            start = time.perf_counter()
            for batch in self.replay.batches(count, self.agent.to_tensors):
                self.busy.start()
                launched = HostCopy(self.agent.update(batch))
                self.busy.stop()
                self.record_pending()
                self.pending = launched
                latents = self.agent.take_latents()
                if latents is not None:
                    self.write_backs.append(HostCopy(latents))
            self.timers["train"] += time.perf_counter() - start
            self.timers["updates"] += count
        self.plan()

    def plan(self) -> None:
        """Whether the ratio counts the next iteration's steps: after the prefill and, for the 2024
        recipe, once the replay holds batch_size x batch_length windows (checked until the ratio
        starts counting: the replay's windows never become fewer). When that iteration pays for an
        update, its first batch is drawn now, in the background while the envs step, from the
        replay as it holds the steps so far (`Replay.prefetch`); the 2024 latents of the updates
        launched are written back first. After a restored replay lost steps, the ratio counts
        again once the iteration ends past `refill_until` (`_pause_for_lost_replay`)."""
        cfg = self.cfg.run
        next_step = self.progress.step + self.steps_per_iteration
        self.counting = next_step > cfg.prefill and next_step > self.refill_until and (
            self.ratio.steps > 0 or self.replay.items() >= self.agent.min_replay_windows)
        if self.refill_until and next_step > self.refill_until:
            self.refill_until = 0
            if self.ranks.main:
                log.info(f"training goes on at step {self.progress.step:,}: the replay holds "
                         f"{len(self.replay):,} steps again")
        if self.counting and self.ratio.total_after(self.ratio.steps + self.steps_per_iteration) > self.ratio.updates:
            self.replay.prefetch(self.agent.to_tensors, before=self.apply_write_backs)

    def apply_write_backs(self) -> None:
        """The stored latents of the updates launched so far, into the replay, in update order."""
        while self.write_backs:
            self.replay.write_back({key: value.numpy() for key, value in self.write_backs.popleft().get().items()})

    def record_pending(self) -> None:
        """The metrics of the last update launched, once (waits for that update alone)."""
        if self.pending is not None:
            self.record_update(self.pending.get())
            self.pending = None

    def record_update(self, values: torch.Tensor) -> None:
        metrics = self.agent.read_metrics(values)
        self.check_finite(metrics)
        # a skipped update's non-finite losses and gradient norms are left out of the means
        self.metrics.add({**metrics, "train/skipped_updates": metrics["train/skipped"]})

    def check_finite(self, metrics: dict[str, float]) -> None:
        """Count updates skipped for a non-finite loss or gradient; too many in a row stop the run."""
        if not metrics["train/skipped"]:
            self.nonfinite = 0
            return
        self.nonfinite += 1
        limit = self.cfg.run.max_nonfinite
        if self.ranks.main:
            log.warning(f"update {self.ratio.updates} at step {self.progress.step} skipped: non-finite "
                        f"loss or gradient ({self.nonfinite} in a row, the run stops at {limit})")
        if self.nonfinite >= limit:
            saved = checkpoint.list_checkpoints(self.logdir / "checkpoints")
            kept = f"the last checkpoint {saved[-1]} is kept" if saved else "no checkpoint was written yet"
            raise TrainingError(f"{self.nonfinite} updates in a row had a non-finite loss or gradient (step "
                                f"{self.progress.step}); stopped, {kept}; run.max_nonfinite={limit}")

    def log(self) -> None:
        self.record_pending()
        self.gather_episodes()
        values = {**self.metrics.pop(), **self.episode_stats.pop(), **cumulative_metrics(self.progress)}
        t = self.timers
        if t["env"] > 0:
            values["perf/env_steps_per_second"] = t["env_steps"] / t["env"]
        if t["train"] > 0:
            values["perf/updates_per_second"] = t["updates"] / t["train"]
        values["perf/learner_busy"] = self.busy.share()  # device time in updates / wall time
        values["perf/train_ratio"] = self.ratio.achieved()
        values["perf/updates"] = self.ratio.updates
        values["perf/replay_steps"] = len(self.replay)
        if self.logger:
            self.logger.write(self.progress.step, values)
        self.logged_step = self.progress.step
        self.timers = {"env": 0.0, "train": 0.0, "env_steps": 0, "updates": 0}

    def log_video(self) -> None:
        """Open-loop predictions on replay windows that stay inside one episode, to TensorBoard."""
        spec = self.cfg.imagine
        length = spec.context + spec.horizon
        if self.replay.count.max() < length:
            return
        windows = self.replay.sample(8 * spec.sequences, length, rng=self.video_rng)
        inside = np.flatnonzero(~windows["is_first"][:, 1:].any(1))[: spec.sequences]
        if len(inside) == 0:
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the latents it samples leave torch's RNG as it was
            torch.manual_seed(int(self.video_rng.integers(2**31)))
            result = open_loop(self.agent, {k: v[inside] for k, v in windows.items()}, spec.context, "replay")
        if result["pred_image"] is not None:
            frames = render.animation_frames(result, spec.scale)
            data = render.gif_bytes(frames, spec.fps)
            self.logger.gif("imagine/open_loop", data, frames.shape[1], frames.shape[2], self.progress.step)
        else:
            self.logger.figure("imagine/open_loop", render.vector_plot(result), self.progress.step)

    def decide(self, before: int) -> tuple[bool, bool]:
        """(stop, save now): a signal asked to stop, or `run.save_every_seconds` have passed since
        the last checkpoint. Every rank takes the same decision (the maximum over ranks), agreed
        every `run.agree_every` steps: agreeing reads the host, which waits for the device."""
        local = [self.stop.requested, time.monotonic() - self.saved_time >= self.cfg.run.save_every_seconds]
        if self.ranks.world > 1:
            every = self.cfg.run.agree_every
            if self.progress.step // every == before // every:
                return False, False
            local = distributed.maximum(torch.tensor(local, dtype=torch.uint8, device=self.device)).tolist()
        return bool(local[0]), bool(local[1])

    def run(self) -> Progress:
        cfg = self.cfg.run
        console = Console(cfg.steps, self.progress.step, self.logdir.name, self.ranks.main)
        stop = False
        try:
            while self.progress.step < cfg.steps and not stop:
                before = self.progress.step
                self.iterate()
                console.update(self.progress.step - before, self.ratio.updates, self.progress.last_return)
                if self.progress.step // cfg.log_every > before // cfg.log_every:
                    self.log()
                    console.line(self.progress.step, self.ratio.updates, self.progress.last_return)
                stop, save_now = self.decide(before)
                if save_now or self.progress.step // cfg.save_every > before // cfg.save_every:
                    self.save()
                if self.logger and cfg.video_every and self.progress.step // cfg.video_every > before // cfg.video_every:
                    self.log_video()
            if self.logged_step != self.progress.step and not stop:  # a stop keeps the interval's sums
                self.log()
            if self.saved_step != self.progress.step:
                self.save()
        finally:
            console.close()
            self.replay.close()
            self.driver.close()
            if self.logger:
                self.logger.close()
        if stop:
            # the signal this rank received, or SIGTERM where another rank's signal stopped it
            raise Stopped(self.stop.signum or signal.SIGTERM, self.progress.step)
        if cfg.eval_episodes and self.ranks.main:  # the training agent plays: no second agent on the device
            saved = checkpoint.list_checkpoints(self.logdir / "checkpoints")[-1]
            play(self.agent, self.cfg, self.progress.step, str(saved), cfg.eval_episodes, self.logdir / "eval.json",
                 self.stop)
        return self.progress


CONFIG_FILE = "config.yaml"  # in a run folder: the config the run was last started with


def saved_config(logdir: Path) -> Config | None:
    """The config of the run in `logdir`: its config file, else (a folder holding checkpoints
    alone) the newest checkpoint's; None where the folder holds no run."""
    path = logdir / CONFIG_FILE
    if path.is_file():
        try:
            return from_yaml(path.read_text())
        except (ConfigError, yaml.YAMLError, AttributeError) as err:
            raise ConfigError(f"{path} is not a readable run config ({str(err).splitlines()[0]}); "
                              f"accepted: the file `dreamer train` wrote, or a new --logdir") from None
    found = checkpoint.load_latest(logdir / "checkpoints")
    return from_yaml(found[1]["config"]) if found else None


def run_config(overrides: Sequence[str], flags: dict[str, Any]) -> Config:
    """The config `dreamer train` runs: a new run's from the flags and overrides, or, where the
    logdir holds a run, that run's config, continued; the flags given must then agree with it
    (outside what a continued run may change: `CONTINUATION_MAY_CHANGE`)."""
    logdir = flags.get("logdir")
    if logdir is None and flags.get("env") is not None:
        logdir = load_config(overrides, flags).logdir  # the default folder of this env, size and seed
    if logdir is None:
        raise ConfigError("dreamer train needs --env (a new run) or the --logdir of a run to continue")
    saved = saved_config(Path(logdir))
    if saved is None:
        if flags.get("env") is None:
            raise ConfigError(f"{logdir} holds no run to continue; a new run needs --env, e.g. --env crafter")
        return load_config(overrides, flags)
    return continued_config(saved, logdir, overrides, flags)


def check_before_writing(cfg: Config) -> None:
    """What a run can be refused for is checked before its folder is made: the device, the env
    (its id, its suite installed) and its spaces (the env adapters refuse those they cannot feed)."""
    resolve_device(cfg.device)
    spaces(cfg.env, cfg.environment)


def train(cfg: Config) -> Progress:
    """Train as `cfg` says, continuing the run in `cfg.logdir` if it has a checkpoint. SIGINT and
    SIGTERM stop it cleanly: a checkpoint at the current step, then `Stopped`. The process that writes
    the run folder (rank 0 under torchrun) holds its lock throughout; a folder another run holds is
    refused with `RunFolderInUse` before anything is written."""
    from contextlib import nullcontext

    from dreamer.runlock import run_lock, writes_run_folder

    setup_logging()  # also when called without the CLI (sweep workers, notebooks)
    check_before_writing(cfg)
    folder_lock = run_lock(cfg.logdir) if writes_run_folder() else nullcontext()
    try:
        with folder_lock, StopRequest() as stop:
            return Trainer(cfg, stop).run()
    finally:
        distributed.shutdown()
