"""The 2024 recipe's agent (2024 = arXiv 2301.04104v2 / Nature; design-2024.md): its modules,
one LaProp step per update (`Learner`), acting, and the latents it stores with every replayed step.

It offers the loop what `dreamer.agent.Agent` offers (`update`, `read_metrics`, `policy`,
`optimizers`, `distribute`, ...), plus the replay context of section 7.5:
    `stored_keys`   the latent each step keeps in the replay: h (D,) float32 and the class index
                    of each latent variable (S,) uint8 (lossless for one-hot samples)
    `stored_step`   those values for the step the policy has just observed
    `take_latents`  the posteriors of the last update's steps 1..T, for the replay's write-back
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from dreamer import distributed
from dreamer.agent import AgentBase, Mode, PolicyState
from dreamer.behavior import ReturnNorm
from dreamer.config import BehaviorConfig, Config, V2024Config
from dreamer.nets.rssm import Latent
from dreamer.v2024.heads import Actor, MLPHead
from dreamer.v2024.learner import Learner
from dreamer.v2024.world_model import WorldModel
from dreamer.world_model import action_dim

MODULES = ("enc", "dyn", "dec", "rew", "con", "pol", "val")  # the reference's names (design-2024.md 8)


def build_modules(v: V2024Config, gamma: float, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space
                  ) -> tuple[WorldModel, Actor, MLPHead]:
    """World model, actor and critic of a 2024 config section."""
    d = v.dims
    wm = WorldModel(obs_space, act_space, units=d.units, deter=d.deter, stoch=v.stoch, classes=d.classes,
                    depth=d.depth, blocks=v.blocks, mults=tuple(v.cnn_mults), coder_layers=v.coder_layers,
                    head_layers=v.head_layers, unimix=v.unimix, bins=v.bins, limit=v.limit, gamma=gamma,
                    free_nats=v.free_nats, dyn_scale=v.dyn_scale, rep_scale=v.rep_scale, eps=v.norm_eps)
    feat = d.deter + v.stoch * d.classes
    actor = Actor(feat, d.units, v.actor_layers, act_space, v.actor_min_std, v.actor_max_std, v.actor_outscale,
                  v.norm_eps)
    critic = MLPHead(feat, d.units, v.critic_layers, v.bins, 0.0, v.norm_eps)
    return wm, actor, critic


def module_counts(wm: WorldModel, actor: Actor, critic: MLPHead) -> dict[str, int]:
    """Parameters per module as the reference optimizer reports them, and their total."""
    modules = dict(zip(MODULES, (wm.encoder, wm.rssm, wm.decoder, wm.reward, wm.cont, actor, critic)))
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}
    counts["total"] = sum(counts.values())
    return counts


def gamma_of(behavior: BehaviorConfig) -> float:
    return 1.0 - 1.0 / behavior.discount_horizon


class Agent2024(AgentBase):
    replay_context = 1  # the step before each trained window, whose stored latent starts the carry (7.5)
    online_queue = True  # consecutive non-overlapping windows are trained on first (7.3)

    def __init__(self, cfg: Config, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space):
        super().__init__(cfg.run.compile)
        self.obs_space, self.act_space = obs_space, act_space
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        v, b = cfg.v2024, cfg.behavior
        self.wm, self.actor, critic = build_modules(v, gamma_of(b), obs_space, act_space)
        self.learner = Learner(
            self.wm, self.actor, critic, horizon=b.horizon, lam=b.lam, eta=v.entropy, slow_reg=v.slow_reg,
            slow_rate=v.slow_rate, repval_scale=v.repval_scale,
            return_norm=ReturnNorm(b.return_decay, b.return_low, b.return_high, b.return_floor),
            optim=dataclasses.asdict(v.optim))
        self.precision = cfg.run.precision
        self.metric_names: list[str] = []
        self.loss_modules = {"update": self.learner}
        self._latents: dict[str, Tensor] | None = None
        self.min_replay_windows = cfg.replay.batch_size * cfg.replay.batch_length  # no prefill (7.7)

    @property
    def stored_classes(self) -> int:
        """Classes of the stored latent indices (for random stand-in batches)."""
        return self.wm.rssm.classes

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def parameter_counts(self) -> dict[str, int]:
        return module_counts(self.wm, self.actor, self.learner.critic)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The one optimizer over every trained module (design-2024.md 1.1)."""
        return {"all": self.learner.optimizer}

    # -- training ---------------------------------------------------------------------------------
    def update(self, batch: dict[str, Any]) -> Tensor:
        """One update on a (B, T+1) batch with stored latents, without a host sync; returns the
        metrics as one device tensor (order: `metric_names`). Its posteriors wait in `take_latents`."""
        batch = self.to_tensors(batch)
        with self.autocast():
            post, metrics = self.learner.update(batch, self.losses()["update"])
        deter = post.deter.float()  # (B, T, D)
        if self.compiled and deter is post.deter:  # kept past the next update: out of the CUDA graph's pool
            deter = deter.clone()
        self._latents = {"deter": deter, "stoch": post.stoch.argmax(-1).to(torch.uint8)}
        self.metric_names = list(metrics)
        return distributed.mean(torch.stack([metrics[k].detach().float() for k in self.metric_names]))

    def take_latents(self) -> dict[str, Tensor] | None:
        """The last update's posteriors of steps 1..T {deter (B, T, D), stoch (B, T, S)}, once,
        on the device (the caller copies them to the host after its updates, not between them)."""
        latents, self._latents = self._latents, None
        return latents

    # -- acting -----------------------------------------------------------------------------------
    def stored_keys(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {"deter": ((self.wm.rssm.deter,), np.dtype(np.float32)),
                "stoch": ((self.wm.rssm.stoch,), np.dtype(np.uint8))}

    def stored_step(self, state: PolicyState) -> dict[str, np.ndarray]:
        """The policy's posterior after the step it just observed, as the replay stores it."""
        latent, _ = state
        host = torch.cat([latent.deter.float(), latent.stoch.argmax(-1).float()], -1).cpu().numpy()  # one copy
        deter = self.wm.rssm.deter
        return {"deter": host[:, :deter], "stoch": host[:, deter:].astype(np.uint8)}

    def initial_policy_state(self, envs: int) -> PolicyState:
        return (self.wm.rssm.initial_state(envs, self.device),
                torch.zeros(envs, action_dim(self.act_space), device=self.device))

    def act(self, obs: dict[str, Tensor], latent: Latent, prev_action: Tensor, mode: Mode) -> tuple[Tensor, Latent]:
        """One policy step from the posterior; `train` and `eval` sample (the reference's policy
        always samples, design-2024.md 9.7), `greedy` takes the mode."""
        with self.autocast():
            tokens = self.wm.encoder(obs)
            latent, _ = self.wm.rssm.obs_step(latent, prev_action, tokens, obs["is_first"])
            dist = self.actor(latent.feat())
            action = dist.mode() if mode == "greedy" else dist.sample()
        latent = Latent(latent.deter.float(), latent.stoch.float())
        action = action.float()
        if not self.discrete:
            action = action.clamp(-1.0, 1.0)
        return action, latent

