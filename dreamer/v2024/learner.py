"""One update of the 2024 recipe (design-2024.md 1 and 6): one loss over every trained module,
one LaProp step, then the slow critic.

    L = world model + policy + value + repval_scale * replay value      (6.5)

which reach: world-model terms -> encoder, RSSM, decoder, reward, continue; policy -> actor;
value -> critic; replay value -> critic, RSSM, encoder. Imagination runs from every replayed
posterior state without gradients into the world model; its R_0 bootstraps the replay values.
Windows start from the zero state here; the replay context of stored latents (7.5) comes with
the 2024 replay.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from dreamer.behavior import ReturnNorm
from dreamer.nets.rssm import Latent, stack
from dreamer.v2024.behavior import imagination_losses, replay_value_loss
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

    def losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The four losses of a (B, T) batch, unscaled, and metrics."""
        wm_loss, post, metrics = self.wm.loss(batch)
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
        policy, value_loss, returns = imagination_losses(
            reward, cont, value, slow_value, critic_logits, dist.log_prob(actions), dist.entropy(), self.wm.twohot,
            self.return_norm, self.lam, self.eta, self.slow_reg)

        replay_feat = post.feat()[:, :-1]  # (B, T-1, F), with its gradient into the RSSM and encoder
        targets = replay_value_returns(batch["reward"].float(), returns[:, 0].detach().view(B, T),
                                       batch["is_terminal"], batch["is_last"], self.wm.gamma, self.lam)
        with torch.no_grad():
            replay_slow = self.wm.twohot.mean(self.slow_critic(replay_feat))
        weight = replay_value_weight(batch["is_last"])
        repval = replay_value_loss(self.critic(replay_feat), targets, replay_slow, weight, self.wm.twohot,
                                   self.slow_reg)
        losses = {"world_model": wm_loss, "policy": policy, "value": value_loss, "replay_value": repval}
        metrics.update({f"loss/{k}": v.detach() for k, v in losses.items()})
        metrics["behavior/return_scale"] = self.return_norm.scale().detach()
        return losses, metrics

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One LaProp step on L, then slow <- (1 - rate) slow + rate critic."""
        losses, metrics = self.losses(batch)
        total = losses["world_model"] + losses["policy"] + losses["value"] + self.repval_scale * losses["replay_value"]
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                slow.lerp_(fast, self.slow_rate)
        return metrics
