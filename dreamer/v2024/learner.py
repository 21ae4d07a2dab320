"""One update of the 2024 recipe (design-2024.md 1 and 6): one loss over every trained module,
one LaProp step, then the slow critic.

    L = world model + policy + value + repval_scale * replay value      (6.5)

which reach: world-model terms -> encoder, RSSM, decoder, reward, continue; policy -> actor;
value -> critic; replay value -> critic, RSSM, encoder. Imagination runs from every replayed
posterior state without gradients into the world model; its R_0 bootstraps the replay values.

Replay context (7.5): a batch holds T + 1 steps and the latents the policy (or an earlier update)
stored with them. The carry starts at step 0's stored (h, z), the model observes steps 1..T, and
the action before step j is the one stored at step j - 1; the posteriors of steps 1..T go back to
the replay (`Agent2024`).
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import Tensor, nn

from dreamer import distributed
from dreamer.behavior import ReturnNorm
from dreamer.nets.dists import one_hot
from dreamer.nets.rssm import Latent, stack
from dreamer.v2024.behavior import imagination_losses, policy_loss, replay_value_loss
from dreamer.v2024.heads import Actor, MLPHead
from dreamer.v2024.laprop import LaProp
from dreamer.v2024.returns import replay_value_returns, replay_value_weight
from dreamer.v2024.world_model import WorldModel


class Learner(nn.Module):
    def __init__(self, wm: WorldModel, actor: Actor, critic: MLPHead, *, horizon: int, lam: float, eta: float,
                 slow_reg: float, slow_rate: float, repval_scale: float, return_norm: ReturnNorm, optim: dict):
        super().__init__()
        self.wm, self.actor, self.critic = wm, actor, critic
        self.slow_critic = copy.deepcopy(critic).requires_grad_(False)
        self.return_norm = return_norm
        self.horizon, self.lam, self.eta, self.slow_reg = horizon, lam, eta, slow_reg
        self.slow_rate, self.repval_scale = slow_rate, repval_scale
        self.optimizer = LaProp([p for m in (wm, actor, critic) for p in m.parameters()], **optim)

    @torch.no_grad()
    def imagine(self, start: Latent) -> tuple[Latent, Tensor]:
        """s_0..s_H (N, H+1, ...) and the actions a_0..a_{H-1} (N, H, A) taken from them, sampled
        from pi(. | sg(s)); nothing here is differentiated."""
        states, actions, state = [start], [], start
        for _ in range(self.horizon):
            action = self.actor(state.feat()).sample()
            state = self.wm.rssm.img_step(state, action)
            states.append(state)
            actions.append(action)
        return stack(states), torch.stack(actions, 1)

    def split_context(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor, Latent]:
        """(B, T+1) batch with stored latents -> observations of steps 1..T, the actions before
        them (B, T, A) and the stored carry of step 0. A step before an episode start counts as
        the episode's last (7.4)."""
        start = Latent(batch["deter"][:, 0].float(),  # (B, D)
                       one_hot(batch["stoch"][:, 0].long(), self.wm.rssm.classes))  # (B, S, C)
        obs = {k: v[:, 1:] for k, v in batch.items() if k not in ("deter", "stoch")}
        obs["is_last"] = obs["is_last"].bool() | torch.cat(
            [obs["is_first"][:, 1:].bool(), torch.zeros_like(obs["is_first"][:, :1], dtype=torch.bool)], 1)
        return obs, batch["action"][:, :-1], start

    def forward(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Latent, dict[str, Tensor]]:
        """`losses`, as a module call (what `run.compile` compiles)."""
        return self.losses(batch)

    def losses(self, batch: dict[str, Tensor]) -> tuple[dict, Latent, dict[str, Tensor]]:
        """The losses of a (B, T+1) batch (see `split_context`), unscaled, with the policy loss as
        its two terms before the return scale and the imagined returns it is taken from (`update`
        finishes it: the scale needs every rank's returns, gathered outside the compiled graph);
        the posteriors of steps 1..T (B, T, ...); metrics."""
        batch, prev_action, start = self.split_context(batch)
        wm_loss, post, metrics = self.wm.loss(batch, prev_action, start)
        B, T = batch["is_first"].shape
        traj, actions = self.imagine(post.detach().map(lambda x: x.flatten(0, 1)))  # N = B*T rollouts
        feat = traj.feat()  # (N, H+1, F), no gradient
        with torch.no_grad():
            reward = self.wm.twohot.mean(self.wm.reward(feat))
            cont = torch.sigmoid(self.wm.cont(feat).squeeze(-1).float())  # the discount itself
            slow_value = self.wm.twohot.mean(self.slow_critic(feat[:, :-1]))
        critic_logits = self.critic(feat)  # (N, H+1, K)
        value = self.wm.twohot.mean(critic_logits).detach()
        dist = self.actor(feat[:, :-1])
        (objective_term, entropy_term), value_loss, returns = imagination_losses(
            reward, cont, value, slow_value, critic_logits, dist.log_prob(actions), dist.entropy(), self.wm.twohot,
            self.lam, self.eta, self.slow_reg)

        replay_feat = post.feat()[:, :-1]  # (B, T-1, F), with its gradient into the RSSM and encoder
        targets = replay_value_returns(batch["reward"].float(), returns[:, 0].detach().view(B, T),
                                       batch["is_terminal"], batch["is_last"], self.wm.gamma, self.lam)
        with torch.no_grad():
            replay_slow = self.wm.twohot.mean(self.slow_critic(replay_feat))
        weight = replay_value_weight(batch["is_last"])
        repval = replay_value_loss(self.critic(replay_feat), targets, replay_slow, weight, self.wm.twohot,
                                   self.slow_reg)
        losses = {"world_model": wm_loss, "policy_terms": (objective_term, entropy_term), "returns": returns.detach(),
                  "value": value_loss, "replay_value": repval}
        metrics.update({f"loss/{k}": losses[k].detach() for k in ("world_model", "value", "replay_value")})
        return losses, post.detach(), metrics

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        """L of 6.5 (the world-model terms come scaled already)."""
        return losses["world_model"] + losses["policy"] + losses["value"] + self.repval_scale * losses["replay_value"]

    def step(self, total: Tensor) -> tuple[Tensor, Tensor]:
        """Backward, one LaProp step, then slow <- (1 - rate) slow + rate critic. A non-finite loss
        or gradient on any rank skips the step on every rank (see `LaProp`). Returns the global
        gradient norm (before AGC) and the skip flag (1.0 if skipped), both device tensors."""
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = self.optimizer.param_groups[0]["params"]
        distributed.average_gradients(params)
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        skip = distributed.maximum((~(torch.isfinite(norm) & torch.isfinite(total.detach()))).float())
        self.optimizer.step(skip=skip)
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                slow.lerp_(fast, self.slow_rate * (1.0 - skip))
        return norm, skip

    def update(self, batch: dict[str, Tensor], losses_of: Callable | None = None) -> tuple[Latent, dict[str, Tensor]]:
        """One update on a (B, T+1) batch: the posteriors of steps 1..T and the metrics. `losses_of`
        computes `losses`: this learner compiled (`dreamer.compiler`), by default the learner itself."""
        losses, post, metrics = (losses_of or self)(batch)
        losses["policy"], scale = policy_loss(losses["policy_terms"], losses["returns"], self.return_norm)
        metrics["loss/policy"] = losses["policy"].detach()
        metrics["behavior/return_scale"] = scale.detach()
        total = self.total(losses)
        metrics["grad_norm/all"], metrics["train/skipped"] = self.step(total)
        metrics["loss/total"] = total.detach()
        return post, metrics
