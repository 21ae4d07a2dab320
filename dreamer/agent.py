"""The agent: world model + behavior, their optimisers, acting and one training update."""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from dreamer import compiler, distributed, precision
from dreamer.behavior import Behavior
from dreamer.config import Config, ConfigError
from dreamer.nets.frozen import FrozenView
from dreamer.nets.rssm import Latent
from dreamer.optim import Optimizer
from dreamer.world_model import WorldModel

PolicyState = tuple[Latent, Tensor]  # (RSSM state, previous action), each (N, ...)
Mode = Literal["train", "eval", "greedy"]
MODES: tuple[Mode, ...] = ("train", "eval", "greedy")


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; accepted here: auto, cpu")
    return device


class AgentBase(nn.Module):
    """What both recipes' agents share: precision, host-to-device transfers, reading metrics,
    acting for N envs and turning model-form actions into env actions. Subclasses set `discrete`,
    `precision`, `metric_names` and `loss_modules` and implement `update`, `initial_policy_state` and `act`.

    What the replay keeps for an agent, by default the steps alone: no values stored beside them,
    no context step before a window, no online queue, training from the first window (after the
    prefill). The 2024 agent overrides these (`dreamer.v2024.agent.Agent2024`)."""

    discrete: bool
    precision: str
    metric_names: list[str]
    replay_context = 0
    online_queue = False
    min_replay_windows = 1

    def __init__(self, compile_setting: str):
        super().__init__()
        self.compile_setting = compile_setting
        # What the updates call, by name: the loss modules (compiled where `run.compile` says so,
        # in `losses()`); subclasses fill it.
        self.loss_modules: dict[str, nn.Module] = {}
        self._losses: dict[str, Callable] = {}
        self._policy_steps: dict[str, Callable] = {}

    @property
    def compiled(self) -> bool:
        """Whether updates and policy steps run through `torch.compile` (`run.compile`)."""
        return compiler.enabled(self.compile_setting, self.device)

    def distribute(self) -> None:
        """Join a data-parallel run (call after `.to(device)`): rank 0's parameters and buffers on
        every rank. The optimisers average the gradients over the ranks after each backward pass,
        outside the compiled graphs (`dreamer.distributed`); the return-norm buffers agree because
        every rank takes the percentiles of the gathered returns."""
        distributed.broadcast_from_main([*self.parameters(), *self.buffers()])

    def losses(self) -> dict[str, Callable]:
        """The losses updates call: `loss_modules`, compiled where `run.compile` says so (built on
        first use, after `.to()`)."""
        if not self._losses:
            self._losses = dict(self.loss_modules)
            if self.compiled:
                self._losses = {name: compiler.Compiled(fn, self.device, f"{name} loss")
                                for name, fn in self.loss_modules.items()}
        return self._losses

    @contextmanager
    def eager(self) -> Iterator[None]:
        """Updates inside the block run uncompiled (for FLOP and op counters)."""
        saved, self._losses = self.losses(), dict(self.loss_modules)
        try:
            yield
        finally:
            self._losses = saved

    def stored_keys(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {}

    def stored_step(self, state: PolicyState | None) -> dict[str, np.ndarray]:
        return {}

    def take_latents(self) -> dict[str, Tensor] | None:
        return None

    def initial_policy_state(self, envs: int) -> PolicyState:
        raise NotImplementedError

    def policy_step(self, mode: Mode) -> Callable[[dict[str, Tensor], Latent, Tensor], tuple[Tensor, Latent]]:
        """`act` for one mode, compiled where `run.compile` says so (built on first use)."""
        if mode not in self._policy_steps:
            step = partial(self.act, mode=mode)
            self._policy_steps[mode] = compiler.Compiled(step, self.device, f"{mode} policy step") if self.compiled else step
        return self._policy_steps[mode]

    def act(self, obs: dict[str, Tensor], latent: Latent, prev_action: Tensor, mode: Mode) -> tuple[Tensor, Latent]:
        raise NotImplementedError

    @torch.no_grad()
    def policy(
        self, obs: dict[str, Any], state: PolicyState | None = None, mode: Mode = "train"
    ) -> tuple[Tensor, PolicyState]:
        """Act for a batch of N envs. obs: arrays (N, ...) with `is_first`; returns the action in
        model form (one-hot (N, A) for discrete, (N, A) in [-1, 1] for continuous) and the state."""
        if mode not in MODES:
            raise ValueError(f"unknown policy mode {mode!r}; accepted: {', '.join(MODES)}")
        encoder = self.wm.encoder
        obs = self.to_tensors({k: obs[k] for k in (*encoder.image_keys, *encoder.vector_keys, "is_first")})
        if state is None:
            state = self.initial_policy_state(obs["is_first"].shape[0])
        step = self.policy_step(mode)
        action, latent = step(obs, *state)
        if isinstance(step, compiler.Compiled):  # kept across calls: out of the CUDA graph's pool
            action, latent = compiler.outside_pool((action, latent))
        return action, (latent, action)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of matmuls and convolutions in updates (`run.precision` on this device)."""
        return precision.compute_dtype(self.precision, self.device)

    def autocast(self):
        return precision.autocast(self.device, self.compute_dtype)

    def configure_backend(self) -> None:
        """The process's backend switches for this agent's precision and device (TF32, cuDNN)."""
        precision.configure_backend(self.precision, self.device)

    def to_tensors(self, data: dict[str, Any]) -> dict[str, Tensor]:
        """Arrays or tensors -> tensors on the agent's device (through pinned memory for CUDA)."""
        pin = self.device.type == "cuda"
        tensors = {k: torch.as_tensor(v) for k, v in data.items()}
        return {k: (v.pin_memory() if pin and v.device.type == "cpu" else v).to(self.device, non_blocking=True)
                for k, v in tensors.items()}

    def train(self, batch: dict[str, Any] | bool = True) -> Any:  # type: ignore[override]
        """One update on a replay batch; returns metrics as floats (a host sync: a training loop
        uses `update` and reads them later).

        Called with a bool it is `nn.Module.train(mode)`, so `.eval()` keeps working.
        """
        if isinstance(batch, bool):
            return super().train(batch)
        return self.read_metrics(self.update(batch))

    def update(self, batch: dict[str, Any]) -> Tensor:
        raise NotImplementedError

    def read_metrics(self, values: Tensor) -> dict[str, float]:
        """`update`'s tensor -> {name: float}; waits for that update to finish."""
        return dict(zip(self.metric_names, values.tolist()))

    def env_action(self, action: np.ndarray) -> np.ndarray:
        """Model-form actions (N, A) on the host -> env actions: indices for discrete, floats for continuous."""
        return action.argmax(-1) if self.discrete else action


class Agent(AgentBase):
    """The P1 agent. What the replay keeps for it: the steps alone (no stored latents, no context
    step before a window, no online queue; see `dreamer.v2024.agent.Agent2024` for the others)."""

    def __init__(self, cfg: Config, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space):
        super().__init__(cfg.run.compile)
        self.obs_space, self.act_space = obs_space, act_space
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.wm = WorldModel(
            obs_space, act_space, rssm=cfg.rssm, encoder=cfg.encoder, decoder=cfg.decoder,
            reward_head=cfg.reward_head, cont_head=cfg.cont_head, twohot=cfg.twohot, loss=cfg.world_model,
        )
        self.behavior = Behavior(
            self.wm.rssm.feat_dim, act_space, self.wm.twohot,
            actor=cfg.actor, critic=cfg.critic, behavior=cfg.behavior,
        )
        self.optim_cfg = cfg.optim
        self.precision = cfg.run.precision
        self._optims: dict[str, Optimizer] = {}
        self.metric_names: list[str] = []
        self.frozen_wm = FrozenView(self.wm, leave_out=(self.wm.encoder, self.wm.decoder))
        self.loss_modules = {"world_model": self.wm, "behavior": self.behavior}

    @property
    def device(self) -> torch.device:
        return self.wm.rssm.initial.device

    @property
    def actor(self) -> nn.Module:
        return self.behavior.actor

    def parameter_counts(self) -> dict[str, int]:
        """World model, actor, critic and their total (the slow critic excluded, as in P1)."""
        parts = {"world_model": self.wm, "actor": self.behavior.actor, "critic": self.behavior.critic}
        counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
        counts["total"] = sum(counts.values())
        return counts

    def optimizers(self) -> dict[str, Optimizer]:
        """World model, actor and critic optimisers, built on first use (after `.to(device)`)."""
        if not self._optims:
            cfg = self.optim_cfg
            self._optims = {
                "world_model": Optimizer(cfg.world_model, self.wm.parameters()),
                "actor": Optimizer(cfg.actor, self.behavior.actor.parameters()),
                "critic": Optimizer(cfg.critic, self.behavior.critic.parameters()),
            }
        return self._optims

    def frozen_world_model(self) -> WorldModel:
        """The world model without parameter gradients, its weights cast once per update (call inside
        the update's autocast); imagination runs on it. Refreshes the critic's frozen view too."""
        if not self.behavior.actor.discrete:
            self.behavior.frozen_critic.refresh()
        return self.frozen_wm.refresh()  # type: ignore[return-value]

    def update(self, batch: dict[str, Any]) -> Tensor:
        """One update of world model, actor and critic on a (B, T) batch without a host sync;
        returns its metrics as one device tensor, in the order of `metric_names` (rank means in a
        data-parallel run)."""
        batch = self.to_tensors(batch)
        post, metrics = self.train_world_model(batch)
        metrics.update(self.train_behavior(post, batch))
        # 1 where any part's loss or gradient was non-finite and its step skipped
        metrics["train/skipped"] = torch.stack([o.skipped for o in self.optimizers().values()]).max()
        self.metric_names = list(metrics)
        return distributed.mean(torch.stack([metrics[k].detach().float() for k in self.metric_names]))

    def train_world_model(self, batch: dict[str, Tensor]) -> tuple[Latent, dict[str, Tensor]]:
        """World-model loss, backward and step; returns the posterior states (B, T, ...) and metrics."""
        loss_of = self.losses()["world_model"]
        with self.autocast():
            wm_loss, post, metrics = loss_of(batch)
        metrics["loss/world_model"] = wm_loss.detach()
        metrics["grad_norm/world_model"] = self.optimizers()["world_model"].step(wm_loss)
        if isinstance(loss_of, compiler.Compiled):  # read after the behaviour loss's graph has run
            post, metrics = compiler.outside_pool((post, metrics))
        return post, metrics

    def train_behavior(self, post: Latent, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Imagination from every posterior state, actor and critic steps, slow-critic EMA."""
        start = post.detach().map(lambda x: x.flatten(0, 1))  # (B*T, ...)
        start_cont = 1.0 - batch["is_terminal"].flatten().float()
        with self.autocast():
            wm = self.frozen_world_model()
            actor_loss, critic_loss, metrics = self.behavior.loss(wm, start, start_cont, self.losses()["behavior"])
        actor, critic = self.optimizers()["actor"], self.optimizers()["critic"]
        actor.zero_grad()
        critic.zero_grad()
        (actor_loss + critic_loss).backward()  # one pass: the two losses share no parameter
        metrics["grad_norm/actor"] = actor.clip_and_step(actor_loss)
        metrics["grad_norm/critic"] = critic.clip_and_step(critic_loss)
        self.behavior.update_slow_critic(critic.skipped)
        return metrics

    def initial_policy_state(self, envs: int) -> PolicyState:
        initial = self.wm.rssm.initial_state(envs).map(torch.Tensor.contiguous)  # strides of every later state
        return initial, torch.zeros(envs, self.wm.rssm.action_dim, device=self.device)

    def act(self, obs: dict[str, Tensor], latent: Latent, prev_action: Tensor, mode: Mode) -> tuple[Tensor, Latent]:
        """One policy step on device tensors: encoder, posterior step, actor. (N, ...) -> action (N, A), state."""
        embed = self.wm.encoder(obs)
        rssm = self.wm.rssm
        latent, _ = rssm.obs_step(latent, prev_action, rssm.project_embed(embed), obs["is_first"])
        dist = self.behavior.actor(latent.feat())
        action = dist.mode() if mode == "greedy" else dist.sample()
        if not self.discrete:
            action = action.clamp(-1.0, 1.0)
        return action, latent


class AgentPolicy:
    """The agent acting in N envs: carries its recurrent state between calls."""

    def __init__(self, agent: Agent, mode: str):
        self.agent, self.mode, self.state = agent, mode, None

    def __call__(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        action, self.state = self.agent.policy(obs, self.state, self.mode)
        model_action = action.cpu().numpy()  # one device-to-host copy per step
        return model_action, self.agent.env_action(model_action)
