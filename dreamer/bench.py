"""Speed on the current device: learner updates (world model and actor-critic parts), policy steps,
collection, and the achieved FLOP/s against a matmul peak measured in the same process."""

from __future__ import annotations

import resource
import statistics
import time
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from torch.utils.flop_counter import FlopCounterMode

import torch._inductor.config

from dreamer import compiler, precision
from dreamer.console import quiet
from dreamer.agent import Agent
from dreamer.config import Config
from dreamer.recipes import build_agent


def random_batch(obs_space: gym.spaces.Dict, act_space: gym.spaces.Space, batch: int, length: int,
                 seed: int = 0, reset_at: int | None = None) -> dict[str, np.ndarray]:
    """A (B, T) batch shaped like replay output with random content. Every window starts with
    `is_first`; `reset_at` adds an episode boundary: a terminal step, then a new episode."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for key, space in obs_space.spaces.items():
        if key in ("reward", "is_first", "is_last", "is_terminal"):
            continue
        if space.dtype == np.uint8:
            data[key] = rng.integers(0, 256, (batch, length, *space.shape), dtype=np.uint8)
        else:
            data[key] = (3 * rng.normal(size=(batch, length, *space.shape))).astype(np.float32)
    if isinstance(act_space, gym.spaces.Discrete):
        data["action"] = np.eye(int(act_space.n), dtype=np.float32)[rng.integers(0, int(act_space.n), (batch, length))]
    else:
        data["action"] = rng.uniform(-1, 1, (batch, length, act_space.shape[0])).astype(np.float32)
    data["reward"] = rng.normal(size=(batch, length)).astype(np.float32)
    data["is_first"] = np.zeros((batch, length), bool)
    data["is_first"][:, 0] = True
    data["is_terminal"] = np.zeros((batch, length), bool)
    if reset_at is not None:
        data["is_first"][:, reset_at] = True
        data["is_terminal"][:, reset_at - 1] = True
    data["is_last"] = data["is_terminal"].copy()
    return data


def agent_batch(agent: Any, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space, batch: int, length: int,
                seed: int = 0) -> dict[str, np.ndarray]:
    """`random_batch` as the agent's replay gives it: `length + agent.replay_context` steps, with
    the per-step values the agent stores (random ones, in their stored dtype and range)."""
    data = random_batch(obs_space, act_space, batch, length + agent.replay_context, seed)
    rng = np.random.default_rng([seed, 1])
    for key, (shape, dtype) in agent.stored_keys().items():
        if dtype == np.uint8:  # class indices
            data[key] = rng.integers(0, agent.stored_classes, (batch, length + agent.replay_context, *shape), dtype)
        else:
            data[key] = rng.normal(size=(batch, length + agent.replay_context, *shape)).astype(dtype)
    return data


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` calls, the device synchronised around each."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """Measured FLOP/s of square matrix multiplies in `dtype`. On a GPU 32 of them run between two
    syncs, so launch and sync latency do not count (one multiply per sync understates an H100's
    bf16 peak by about 2x); a CPU has no such latency and runs one."""
    chain = 32 if device.type == "cuda" else 1
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)

    def run() -> None:
        for _ in range(chain):
            torch.mm(a, b, out=out)

    run()
    return chain * 2 * size**3 / median_seconds(run, device, repeats)


def time_learner(agent: Any, batch: dict[str, torch.Tensor], updates: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of the world-model part, the actor-critic part and whole updates (the 2024
    recipe's one loss has no parts: those are NaN)."""
    device = agent.device
    for _ in range(warmup):
        agent.train(batch)
    if not isinstance(agent, Agent):
        times = []
        for _ in range(updates):
            sync(device)
            start = time.perf_counter()
            agent.train(batch)
            times.append(time.perf_counter() - start)
        nan = float("nan")
        return {"world_model_seconds": nan, "actor_critic_seconds": nan, "update_seconds": statistics.median(times)}
    parts: dict[str, list[float]] = {"world_model": [], "actor_critic": [], "update": []}
    for _ in range(updates):
        sync(device)
        start = time.perf_counter()
        post, _ = agent.train_world_model(batch)
        sync(device)
        middle = time.perf_counter()
        agent.train_behavior(post, batch)
        sync(device)
        end = time.perf_counter()
        parts["world_model"].append(middle - start)
        parts["actor_critic"].append(end - middle)
        parts["update"].append(end - start)
    return {f"{name}_seconds": statistics.median(times) for name, times in parts.items()}


def count_update_flops(agent: Agent, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one full update (matmuls and convolutions, forward and backward)."""
    with agent.eager(), FlopCounterMode(display=False) as counter:
        agent.train(batch)
    return counter.get_total_flops()


CUDA_LAUNCHES = {"cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaGraphLaunch"}
NOT_KERNELS = {"empty", "empty_strided", "empty_like", "resolve_conj", "resolve_neg", "lift_fresh"}
HOST_SYNCS = {"_local_scalar_dense", "nonzero", "masked_select", "_unique2",
              "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"}
# CPU kernels that read their scalar arguments from (host) memory, which on a GPU they read on the device
READS_ON_DEVICE = ("aten::_fused_adam_",)


def _inside(event, names: tuple[str, ...]) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in names:
            return True
        parent = parent.cpu_parent
    return False


def _is_view(op: str) -> bool:
    packet = getattr(torch.ops.aten, op, None)
    if packet is None:
        return False
    return any(getattr(packet, name).is_view for name in packet.overloads())


def count_update_kernels(agent: Agent, batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """Kernels one update runs and the host syncs inside it, from the profiler's events. On the
    CPU: eager aten ops that do work themselves (leaves of the op tree, views and allocations left
    out), plus Inductor's generated kernels where the update is compiled. On CUDA: the launches the
    host makes (kernels, and CUDA graph replays, each one launch however many kernels it holds)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = agent.device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities) as prof:
        agent.update(batch)
        sync(agent.device)
    return count_kernels(prof.events(), cuda)


def count_kernels(events: Any, cuda: bool) -> dict[str, int]:
    """`count_update_kernels` from a profile's events."""
    kernels = syncs = 0
    for event in events:
        name = event.name
        if cuda:
            kernels += name in CUDA_LAUNCHES
        elif name.startswith("graph_") and "fused" in name or name.startswith("triton_"):
            kernels += 1
            continue
        op = name[len("aten::"):] if name.startswith("aten::") else name
        if op in HOST_SYNCS and not _inside(event, READS_ON_DEVICE):
            syncs += 1
        leaf = name.startswith("aten::") and not event.cpu_children
        if not cuda and leaf and op not in NOT_KERNELS and not _is_view(op):
            kernels += 1
    return {"kernels": kernels, "host_syncs": syncs}


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def agent_and_batch(cfg: Config) -> tuple[Agent, dict[str, torch.Tensor]]:
    """A fresh agent of `cfg` on its device and a replay-shaped random batch there."""
    from dreamer.agent import resolve_device
    from dreamer.envs import spaces

    obs_space, act_space = spaces(cfg.env, cfg.environment)
    agent = build_agent(cfg, obs_space, act_space, resolve_device(cfg.device))
    return agent, agent.to_tensors(agent_batch(agent, obs_space, act_space, cfg.replay.batch_size,
                                               cfg.replay.batch_length))


def time_run(cfg: Config, updates: int) -> dict[str, float]:
    """A short training run in a temporary folder, timed over its iterations after the first that
    trains (which compiles, or warms the caches) until `updates` more updates are made: env steps
    per second and the share of the wall time the device spends on updates (`perf/learner_busy`).
    The prefill is cut to one window; the run's own log lines are left out."""
    import copy
    import tempfile

    from dreamer.train import Trainer

    cfg = copy.deepcopy(cfg)
    with tempfile.TemporaryDirectory(prefix="dreamer-bench-") as tmp:
        cfg.logdir, cfg.run.steps = tmp, 10**12
        cfg.run.prefill = min(cfg.run.prefill, cfg.replay.batch_length)
        cfg.run.log_every = cfg.run.save_every = cfg.run.steps
        cfg.run.save_every_seconds, cfg.run.video_every, cfg.run.eval_episodes = 1e12, 0, 0
        with quiet():
            trainer = Trainer(cfg)
        try:
            while trainer.ratio.updates < 1:
                trainer.iterate()
            trainer.record_pending()  # the first update done
            trainer.busy.share()  # the interval starts now
            steps, start, target = trainer.progress.step, time.perf_counter(), trainer.ratio.updates + updates
            trainer.iterate()
            while trainer.ratio.updates < target:
                trainer.iterate()
            trainer.record_pending()
            busy = trainer.busy.share()
            seconds = time.perf_counter() - start
            return {"learner_busy": busy, "run_measured_steps_per_second": (trainer.progress.step - steps) / seconds}
        finally:
            trainer.driver.close()
            if trainer.logger:
                trainer.logger.close()


def bench(cfg: Config, updates: int, env_steps: int = 500, policy_steps: int = 50) -> dict[str, float | str]:
    """Learner, policy and collection speed of `cfg` on its device, and where the update stands
    against the device's measured matmul peak."""
    from dreamer.envs import make_vector
    from dreamer.envs.driver import random_policy

    agent, batch = agent_and_batch(cfg)
    device = agent.device
    obs_space, act_space = agent.obs_space, agent.act_space
    compiled = agent.compiled
    if compiled:  # Inductor's kernels then show in the profiler, for the kernel count
        torch._inductor.config.cpp.enable_kernel_profile = True
    warm_calls = compiler.calls_to_steady_state(device) if compiled else 1
    start = time.perf_counter()
    for _ in range(warm_calls):
        agent.train(batch)
    warm_seconds = time.perf_counter() - start
    learner = time_learner(agent, batch, updates, warmup=0)
    flops = count_update_flops(agent, batch)
    kernels = eager_kernels = count_update_kernels(agent, batch)
    if compiled:
        with agent.eager():
            eager_kernels = count_update_kernels(agent, batch)

    envs = cfg.run.envs
    obs = {k: v[:envs, 0] for k, v in random_batch(obs_space, act_space, envs, 1).items()}
    state = agent.policy(obs)[1]
    policy_s = median_seconds(partial(agent.policy, obs, state), device, policy_steps)

    vector = make_vector(cfg.env, cfg.environment, envs, seed=cfg.seed)
    act = random_policy(act_space, envs, np.random.default_rng(cfg.seed))
    vector.reset(seed=cfg.seed)
    start = time.perf_counter()
    for _ in range(env_steps // envs):
        vector.step(act({})[1])
    env_sps = (env_steps // envs) * envs / (time.perf_counter() - start)
    vector.close()

    updates_per_step = cfg.run.train_ratio / (cfg.replay.batch_size * cfg.replay.batch_length)
    seconds_per_step = 1 / env_sps + policy_s / envs + updates_per_step * learner["update_seconds"]
    peak = matmul_peak(device, agent.compute_dtype)
    result = {
        "env": cfg.env, "size": cfg.size, "device": str(device), "threads": torch.get_num_threads(),
        "precision": precision.name(agent.compute_dtype), "tf32": precision.uses_tf32(cfg.run.precision, device),
        "compiled": compiled,
        "compile_seconds": warm_seconds - warm_calls * learner["update_seconds"] if compiled else 0.0,
        **agent.parameter_counts(),
        "world_model_ms": 1000 * learner["world_model_seconds"],
        "actor_critic_ms": 1000 * learner["actor_critic_seconds"],
        "update_ms": 1000 * learner["update_seconds"],
        "policy_ms_per_step": 1000 * policy_s,
        "env_steps_per_second": env_sps,
        "train_ratio": cfg.run.train_ratio,
        "run_steps_per_second": 1 / seconds_per_step,
        "peak_memory_gb": peak_memory_gb(device),
        "flops_per_update": flops,
        "achieved_flops_per_second": flops / learner["update_seconds"],
        "matmul_peak_flops_per_second": peak,
        "fraction_of_peak": flops / learner["update_seconds"] / peak,
        "kernels_per_update": kernels["kernels"],
        "eager_kernels_per_update": eager_kernels["kernels"],
        "host_syncs_per_update": kernels["host_syncs"],
    }
    del agent, batch  # the run below builds its own agent; two would hold twice the device memory
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {**result, **time_run(cfg, updates)}
