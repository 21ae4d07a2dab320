"""What the world model imagines: observe `context` real steps, then predict open-loop.

Sequences come from the run's saved replay chunks (`saved`) or from fresh episodes played with the
loaded policy (`fresh`). After the context the model rolls its prior forward under the recorded
actions (`replay`, so the real future is there to compare) or under its own actor (`policy`, where
no ground truth exists). `open_loop` returns arrays; `dreamer.render` turns them into pictures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamer import render
from dreamer.agent import Agent, AgentPolicy
from dreamer.checkpoint import CheckpointError, atomic_write
from dreamer.config import Config, ConfigError
from dreamer.envs import make_vector
from dreamer.envs.driver import Driver
from dreamer.nets.dists import symexp
from dreamer.nets.rssm import Latent, stack
from dreamer.replay import chunk_files, step_spaces

FRESH_SEED_OFFSET = 2 * 10**6  # fresh episodes use other env seeds than training and eval


def inside_episode(is_first: np.ndarray, length: int) -> np.ndarray:
    """Start indices of windows of `length` steps with no episode start after their first step."""
    starts_before = np.concatenate([[0], np.cumsum(is_first)])  # is_first steps before each index
    begin = np.arange(len(is_first) - length + 1)
    return begin[starts_before[begin + length] - starts_before[begin + 1] == 0]


def saved_sequences(replay_dir: Path, count: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` windows of `length` steps inside episodes, from the newest replay chunks on disk."""
    files = chunk_files(replay_dir)
    if not files:
        raise CheckpointError(f"no saved episodes in {replay_dir}; use --source fresh to play new ones, or "
                              f"--replay-dir if the run kept its replay elsewhere")
    candidates: list[tuple[dict[str, np.ndarray], int]] = []
    longest = 0
    for chunks in files.values():
        parts: list[dict[str, np.ndarray]] = []
        for _, path in reversed(chunks):  # newest first, until there are windows enough to pick from
            with np.load(path) as data:
                parts.insert(0, {k: data[k] for k in data.files})
            stream = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            starts = inside_episode(stream["is_first"], length)
            if len(starts) >= 4 * count:
                break
        bounds = np.concatenate([np.flatnonzero(stream["is_first"]), [len(stream["is_first"])]])
        longest = max(longest, int(np.diff(bounds, prepend=0).max()))
        candidates += [(stream, int(s)) for s in starts]
    if not candidates:
        raise ConfigError(
            f"context + horizon = {length} steps, but the longest stored episode segment has {longest}; "
            f"choose a shorter --horizon or --context"
        )
    picks = rng.choice(len(candidates), size=count, replace=len(candidates) < count)
    batch = {k: np.stack([candidates[i][0][k][candidates[i][1]:candidates[i][1] + length] for i in picks])
             for k in candidates[0][0]}
    batch["is_first"][:, 0] = True
    return batch


def fresh_sequences(agent: Agent, cfg: Config, count: int, length: int) -> dict[str, np.ndarray]:
    """Play `count` envs with the agent's policy until each has `length` steps of one episode."""
    keys = step_spaces(agent.obs_space, agent.act_space)
    seed = cfg.seed + FRESH_SEED_OFFSET
    envs = make_vector(cfg.env, cfg.environment, count, seed=seed)
    buffers: list[list[dict[str, np.ndarray]]] = [[] for _ in range(count)]
    done: dict[int, list[dict[str, np.ndarray]]] = {}

    def keep(step: dict[str, np.ndarray]) -> None:
        for k in range(count):
            if k in done:
                continue
            if step["is_first"][k]:
                buffers[k] = []
            buffers[k].append({key: step[key][k] for key in keys})
            if len(buffers[k]) == length:
                done[k] = buffers[k]

    driver = Driver(envs, seed=seed, on_step=keep)
    policy = AgentPolicy(agent, "eval")
    try:
        for _ in range(50 * length):  # enough for episodes far shorter than `length` to be seen
            driver.step(policy)
            if len(done) == count:
                break
    finally:
        driver.close()
    if len(done) < count:
        raise ConfigError(f"fresh episodes ended before context + horizon = {length} steps; choose a shorter --horizon")
    return {key: np.stack([np.stack([s[key] for s in done[k]]) for k in range(count)]) for key in keys}


@torch.no_grad()
def open_loop(agent: Agent, batch: dict[str, np.ndarray], context: int, actions: str) -> dict[str, Any]:
    """Observe `context` steps of `batch` (K, L, ...), predict the remaining L - context open-loop.

    Returns numpy arrays over all L steps (context steps are reconstructions from the posterior):
    pred_image (K, L, H, W, C) in [0, 1], pred_vector (K, L, D), pred_reward, pred_cont (K, L),
    and the truth with `has_truth` (K, L) marking where it exists.
    """
    if actions not in ("replay", "policy"):
        raise ConfigError(f"unknown --actions {actions!r}; accepted: replay, policy")
    wm, rssm = agent.wm, agent.wm.rssm
    data = agent.to_tensors(batch)
    count, length = data["is_first"].shape
    if not 0 < context < length:
        raise ConfigError(f"context {context} must be between 1 and the sequence length {length} - 1")
    post = wm.observe_window(data, context)
    state = Latent(post.deter[:, -1], post.stoch[:, -1])
    imagined = []
    for t in range(context, length):
        if actions == "replay":
            action = data["action"][:, t - 1]
        else:
            action = agent.actor(state.feat()).sample()
        state = rssm.img_step(state, action)
        imagined.append(state)
    states = Latent(torch.cat([post.deter, stack(imagined).deter], 1), torch.cat([post.stoch, stack(imagined).stoch], 1))
    preds = wm.predict(states)  # (K, L, ...)
    has_truth = np.ones((count, length), bool)
    if actions == "policy":
        has_truth[:, context:] = False
    out: dict[str, Any] = {
        "context": context, "actions": actions, "has_truth": has_truth,
        "pred_reward": preds["reward"].float().cpu().numpy(),
        "pred_cont": preds["cont"].float().cpu().numpy(),
        "truth_reward": np.where(has_truth, batch["reward"], np.nan),
        "truth_image": None, "pred_image": None, "truth_vector": None, "pred_vector": None,
    }
    image_keys, vector_keys = wm.decoder.image_keys, wm.decoder.vector_keys
    if image_keys:
        key = image_keys[0]
        out["truth_image"] = batch[key]
        out["pred_image"] = preds[key].float().cpu().numpy()
        err = (out["truth_image"].astype(np.float32) / 255.0 - out["pred_image"]) ** 2
        out["mse"] = np.where(has_truth, err.reshape(count, length, -1).mean(-1), np.nan)
    if vector_keys:
        key = vector_keys[0]
        out["truth_vector"] = np.where(has_truth[..., None], batch[key], np.nan)
        out["pred_vector"] = symexp(preds[key].float()).cpu().numpy()
        if not image_keys:
            err = (out["truth_vector"] - out["pred_vector"]) ** 2
            out["mse"] = err.mean(-1)
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per-step prediction error and rewards as plain lists (NaN -> None) for `--json`."""
    def clean(array):
        return [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in np.asarray(array)]
    mse = np.asarray(result["mse"])
    per_step = [None if np.isnan(col).all() else round(float(np.nanmean(col)), 6) for col in mse.T]
    return {
        "context": result["context"], "actions": result["actions"], "sequences": int(mse.shape[0]),
        "steps": int(mse.shape[1]), "mse_per_step": per_step, "mse": clean(mse),
        "reward_pred": clean(result["pred_reward"]), "reward_real": clean(result["truth_reward"]),
        "cont_pred": clean(result["pred_cont"]),
    }


def imagine(agent: Agent, cfg: Config, replay_dir: Path, out: Path, *, sequences: int, context: int, horizon: int,
            actions: str, source: str, write_json: bool, seed: int = 0) -> dict[str, Any]:
    """The `dreamer imagine` command: sequences -> open loop -> picture (+ JSON)."""
    suffix = out.suffix.lower()
    if suffix not in (".gif", ".mp4", ".png"):
        raise ConfigError(f"unknown output type {suffix!r} for {out}; accepted: .gif, .mp4, .png")
    has_images = bool(agent.wm.decoder.image_keys)
    if not has_images and suffix != ".png":
        raise ConfigError(f"env {cfg.env} has no image observations, so there are no frames for {suffix}; "
                          f"use a .png file for a plot of the vector predictions")
    if source not in ("saved", "fresh"):
        raise ConfigError(f"unknown --source {source!r}; accepted: saved, fresh")
    if context < 1 or horizon < 1 or sequences < 1:
        raise ConfigError(f"--context, --horizon and --episodes must be >= 1, got {context}, {horizon}, {sequences}")
    length = context + horizon
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if source == "saved":
        batch = saved_sequences(replay_dir, sequences, length, rng)
    else:
        batch = fresh_sequences(agent, cfg, sequences, length)
    result = open_loop(agent, batch, context, actions)
    if has_images:
        render.write_media(out, result, cfg.imagine.scale, cfg.imagine.fps)
    else:
        render.vector_plot(result, out)
    info = summary(result)
    if write_json:
        json_path = out.with_suffix(".json")
        atomic_write(json_path, lambda f: f.write(json.dumps(info, indent=2).encode()))
    return info


def logdir_of(checkpoint_path: str) -> Path:
    """The run folder of a checkpoint file, `checkpoints/` folder or logdir."""
    path = Path(checkpoint_path)
    if path.is_file():
        path = path.parent
    return path.parent if path.name == "checkpoints" else path


def replay_dir_of(checkpoint_path: str, cfg: Config, replay_dir: str | None) -> Path:
    """Where a run's replay chunks are: `--replay-dir`, else the run's `replay.directory`, else
    LOGDIR/replay."""
    return Path(replay_dir or cfg.replay.directory or logdir_of(checkpoint_path) / "replay")
