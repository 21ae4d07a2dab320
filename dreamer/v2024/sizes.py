"""The 2024 size presets (`configs/2024/sizes.yaml`) and their parameter counts, per module as
the reference optimizer reports them (design-2024.md section 8): enc, dyn, dec, rew, con, pol,
val; the slow critic is left out."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
import yaml

from dreamer.config import ConfigError, config_dir
from dreamer.v2024.heads import Actor, MLPHead
from dreamer.v2024.world_model import WorldModel

MODULES = ("enc", "dyn", "dec", "rew", "con", "pol", "val")


def _read(name: str) -> dict[str, Any]:
    return yaml.safe_load((config_dir() / "2024" / name).read_text())


def presets() -> dict[str, dict[str, int]]:
    return _read("sizes.yaml")


def parameter_counts(size: str, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space) -> dict[str, int]:
    """{module: parameters} and their `total` for a preset, built on the meta device."""
    known = presets()
    if size not in known:
        raise ConfigError(f"unknown 2024 size {size!r}; accepted: {', '.join(known)}")
    preset, arch = known[size], _read("architecture.yaml")
    with torch.device("meta"):
        wm = WorldModel(obs_space, act_space, units=preset["units"], deter=preset["deter"], stoch=arch["stoch"],
                        classes=preset["classes"], depth=preset["depth"], blocks=arch["blocks"],
                        mults=tuple(arch["cnn_mults"]), coder_layers=arch["coder_layers"],
                        head_layers=arch["head_layers"], unimix=arch["unimix"], bins=arch["bins"],
                        limit=arch["limit"], gamma=1 - 1 / arch["discount_horizon"], free_nats=arch["free_nats"],
                        dyn_scale=arch["dyn_scale"], rep_scale=arch["rep_scale"], eps=arch["norm_eps"])
        feat = preset["deter"] + arch["stoch"] * preset["classes"]
        actor = Actor(feat, preset["units"], arch["actor_layers"], act_space, arch["actor_min_std"],
                      arch["actor_max_std"], arch["actor_outscale"], arch["norm_eps"])
        critic = MLPHead(feat, preset["units"], arch["critic_layers"], arch["bins"], 0.0, arch["norm_eps"])
    modules = dict(zip(MODULES, (wm.encoder, wm.rssm, wm.decoder, wm.reward, wm.cont, actor, critic)))
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}
    counts["total"] = sum(counts.values())
    return counts
