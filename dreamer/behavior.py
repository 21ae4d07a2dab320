"""Actor and critic learned in imagination (P1 section 'actor critic learning', eq. 6-8).

From every posterior state of the batch the world model imagines `horizon` steps under the actor.
Returns are lambda-returns bootstrapped with the critic being trained; advantages are scaled by
S = max(1, EMA of the 95th - 5th return percentile). The critic regresses two-hot returns and is
pulled towards its slow EMA copy. Discrete actors learn by REINFORCE, so imagination runs without
an autograd tape through the dynamics; continuous actors backpropagate returns through it.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import torch
from torch import Tensor, nn

from dreamer import distributed
from dreamer.config import ActorConfig, BehaviorConfig, CriticConfig
from dreamer.nets.dists import BoundedNormal, OneHotDist, TwoHot, unimix_logits
from dreamer.nets.frozen import FrozenView
from dreamer.nets.layers import MLP, linear
from dreamer.nets.rssm import Latent
from dreamer.world_model import WorldModel, action_dim


def lambda_return(reward: Tensor, value: Tensor, cont: Tensor, lam: float | Tensor) -> Tensor:
    """TD(lambda) returns over imagined states s_0..s_H (P1 eq. 7).

    reward, value, cont: (B, H+1); cont already includes the discount; lam a number or per step
    (B, H+1) (the 2024 replay returns cut it at episode ends). Result (B, H) with
    R_t = reward[:, t+1] + cont[:, t+1] ((1 - lam_{t+1}) value[:, t+1] + lam_{t+1} R_{t+1}), R_H = value[:, H].
    """
    horizon = reward.shape[1] - 1
    returns = []
    last = value[:, -1]
    for t in reversed(range(horizon)):
        step_lam = lam[:, t + 1] if isinstance(lam, Tensor) else lam  # a number adds no ops per step
        last = reward[:, t + 1] + cont[:, t + 1] * ((1 - step_lam) * value[:, t + 1] + step_lam * last)
        returns.append(last)
    return torch.stack(returns[::-1], 1)


def advantage(returns: Tensor, value: Tensor) -> Tensor:
    """R_t - v(s_t) for t < H, before the division by the return scale S. returns (N, H), value
    (N, H+1) -> (N, H). The baseline keeps its gradient, as in the reference P1 code: for a
    continuous actor trained by dynamics backprop, v(s_t) of an imagined s_t depends on the
    earlier actions (design.md, actor)."""
    return returns - value[:, :-1]


def actor_loss_terms(objective: Tensor, entropy: Tensor, weight: Tensor, eta: float) -> tuple[Tensor, Tensor]:
    """The two terms of the actor loss apart: -mean(w objective) and -mean(w eta H(pi)). (N, H) each.
    For REINFORCE the objective is sg(R - v) log pi(a); for dynamics backprop it is R - v itself."""
    return -(weight * objective).mean(), -(weight * eta * entropy).mean()


def actor_loss(objective: Tensor, entropy: Tensor, weight: Tensor, eta: float, scale: Tensor | float = 1.0) -> Tensor:
    """-mean(w (objective / S + eta H(pi)))  (P1 eq. 8), the advantage scaled by S = `scale`.

    Scaling the objective's mean instead of each advantage is the same loss (S is one number,
    without gradient), and lets the loss graphs end before S is known: S comes from the returns of
    every rank (`ReturnNorm.update`), which the graph hands out, so no collective runs in a graph."""
    objective_term, entropy_term = actor_loss_terms(objective, entropy, weight, eta)
    return scale_actor_loss(objective_term, entropy_term, scale)


def scale_actor_loss(objective_term: Tensor, entropy_term: Tensor, scale: Tensor | float) -> Tensor:
    """`actor_loss` from its two terms and the return scale S."""
    return objective_term / scale + entropy_term


def critic_loss(twohot: TwoHot, logits: Tensor, returns: Tensor, slow_value: Tensor, weight: Tensor,
                slow_reg: float) -> Tensor:
    """mean(w (CE(logits, twohot(sg(R))) + slow_reg CE(logits, twohot(slow critic mean))))  (P1 eq. 7)."""
    loss = twohot.loss(logits, returns.detach()) + slow_reg * twohot.loss(logits, slow_value.detach())
    return (weight * loss).mean()


class ReturnNorm(nn.Module):
    """EMA of the low and high return percentiles; scale S = max(floor, high - low) (P1 eq. 8)."""

    def __init__(self, decay: float, low: float, high: float, floor: float):
        super().__init__()
        self.decay, self.floor = decay, floor
        self.register_buffer("quantiles", torch.tensor([low, high]), persistent=False)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        """Percentiles over the returns of every rank (all of them in a data-parallel run); returns
        with a non-finite value leave the EMA as it is (that update is skipped anyway)."""
        low, high = torch.quantile(distributed.concat(returns.detach().float().flatten()), self.quantiles)
        finite = torch.isfinite(low) & torch.isfinite(high)
        self.low.copy_(torch.where(finite, torch.lerp(self.low, low, 1 - self.decay), self.low))
        self.high.copy_(torch.where(finite, torch.lerp(self.high, high, 1 - self.decay), self.high))

    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=self.floor)


class Actor(nn.Module):
    """feat (..., F) -> action distribution: unimix categorical or bounded Normal."""

    def __init__(self, cfg: ActorConfig, feat_dim: int, act_space: gym.spaces.Space):
        super().__init__()
        self.cfg = cfg
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        size = action_dim(act_space)
        self.mlp = MLP(feat_dim, cfg.units, cfg.layers)
        self.out = linear(self.mlp.out_dim, size if self.discrete else 2 * size, output=True)

    def forward(self, feat: Tensor) -> OneHotDist | BoundedNormal:
        raw = self.out(self.mlp(feat))
        if self.discrete:
            return OneHotDist(unimix_logits(raw, self.cfg.unimix))
        return BoundedNormal(raw, self.cfg.min_std, self.cfg.max_std)


class Critic(nn.Module):
    """feat (..., F) -> two-hot logits of the return; the output layer starts at zero."""

    def __init__(self, cfg: CriticConfig, feat_dim: int, bins: int):
        super().__init__()
        self.mlp = MLP(feat_dim, cfg.units, cfg.layers)
        self.out = linear(self.mlp.out_dim, bins, zero=True, output=True)

    def forward(self, feat: Tensor) -> Tensor:
        return self.out(self.mlp(feat))


class Behavior(nn.Module):
    def __init__(
        self,
        feat_dim: int,
        act_space: gym.spaces.Space,
        twohot: TwoHot,
        *,
        actor: ActorConfig,
        critic: CriticConfig,
        behavior: BehaviorConfig,
    ):
        super().__init__()
        self.cfg, self.critic_cfg, self.actor_cfg = behavior, critic, actor
        self.twohot = twohot
        self.actor = Actor(actor, feat_dim, act_space)
        self.critic = Critic(critic, feat_dim, twohot.bins.numel())
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # The critic without parameter gradients, for returns backpropagated into a continuous
        # actor; refreshed once per update by `Agent.frozen_world_model`.
        self.frozen_critic = FrozenView(self.critic)
        self.return_norm = ReturnNorm(behavior.return_decay, behavior.return_low, behavior.return_high,
                                      behavior.return_floor)
        self.gamma = 1.0 - 1.0 / behavior.discount_horizon

    @torch.no_grad()
    def update_slow_critic(self, skipped: Tensor | None = None) -> None:
        """slow <- (1 - rate) slow + rate critic; not moved when the critic's step was `skipped` (1.0)."""
        rate = self.critic_cfg.slow_rate if skipped is None else self.critic_cfg.slow_rate * (1.0 - skipped)
        slow = list(self.slow_critic.parameters())
        steps = torch._foreach_sub(list(self.critic.parameters()), slow)
        torch._foreach_mul_(steps, rate)  # a device tensor: no host read (`_foreach_lerp_` reads it)
        torch._foreach_add_(slow, steps)

    def _policy(self, state: Latent) -> tuple[Tensor, Tensor]:
        """Sample an action; the aux output is the log-probability (discrete) or entropy. The actor
        reads sg(s_t): returns reach it only through its actions (P1 reference code)."""
        dist = self.actor(state.feat().detach())
        action = dist.sample()
        if self.actor.discrete:
            return action, torch.stack([dist.log_prob(action.detach()), dist.entropy()], -1)
        return action, dist.entropy()[..., None]

    def forward(self, wm: WorldModel, start: Latent, start_cont: Tensor) -> dict[str, Tensor]:
        """`imagine`, as a module call (what `run.compile` compiles)."""
        return self.imagine(wm, start, start_cont)

    def imagine(self, wm: WorldModel, start: Latent, start_cont: Tensor) -> dict[str, Tensor]:
        """Everything of the actor and critic losses that does not need the return scale S:
        rollouts, lambda-returns, the critic loss and the actor loss's two terms before scaling.

        wm: the world model's frozen view (`Agent.frozen_world_model`), so no gradient reaches its
        parameters; start: posterior states (N, ...), gradients stopped; start_cont (N,) = 1 - is_terminal.
        """
        discrete = self.actor.discrete
        traj, _actions, aux = wm.rssm.imagine(start, self._policy, self.cfg.horizon, dynamics_grad=not discrete)
        feat = traj.feat()  # (N, H+1, F)
        reward = wm.twohot.mean(wm.reward(feat))  # (N, H+1)
        cont = (wm.cont(feat) > 0).float() * self.gamma
        cont = torch.cat([start_cont[:, None].float(), cont[:, 1:]], 1)
        critic_logits = self.critic(feat.detach())  # (N, H+1, bins)
        if discrete:
            value = self.twohot.mean(critic_logits).detach()
        else:
            value = self.twohot.mean(self.frozen_critic.view(feat))
        returns = lambda_return(reward, value, cont, self.cfg.lam)  # (N, H)
        weight = torch.cumprod(cont, 1).detach()[:, :-1]  # (N, H)

        adv = advantage(returns, value)  # (N, H), unscaled; value is detached for REINFORCE
        if discrete:
            logp, entropy = aux.unbind(-1)
            objective = adv.detach() * logp
        else:
            entropy = aux[..., 0]
            objective = adv
        objective_term, entropy_term = actor_loss_terms(objective, entropy, weight, self.actor_cfg.entropy)

        with torch.no_grad():
            # A contiguous copy: a Linear on the strided slice runs as a batched matmul with the
            # weight repeated per row (7% of an s-size update on CPU); the copy costs 1%.
            slow_value = self.twohot.mean(self.slow_critic(feat[:, :-1].detach().contiguous()))
        value_loss = critic_loss(self.twohot, critic_logits[:, :-1], returns, slow_value, weight,
                                 self.critic_cfg.slow_reg)
        return {
            "objective_term": objective_term, "entropy_term": entropy_term, "critic_loss": value_loss,
            "returns": returns.detach(),
            "actor/entropy": entropy.mean().detach(),
            "behavior/return": returns.mean().detach(),
            "behavior/value": value[:, :-1].mean().detach(),
            "behavior/imag_reward": reward[:, 1:].mean().detach(),
            "behavior/advantage_abs_unscaled": adv.abs().mean().detach(),
        }

    def loss(self, wm: WorldModel, start: Latent, start_cont: Tensor, imagine_of=None
             ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Actor and critic losses from imagined rollouts (P1 eq. 6-8). `imagine_of` runs `imagine`
        (this module compiled, by default the module itself); the return percentiles of every rank
        and the actor loss's scaling by S follow outside it (see `actor_loss`)."""
        parts = (imagine_of or self)(wm, start, start_cont)
        self.return_norm.update(parts["returns"])
        scale = self.return_norm.scale()
        policy = scale_actor_loss(parts["objective_term"], parts["entropy_term"], scale)
        value_loss = parts["critic_loss"]
        metrics = {
            "loss/actor": policy.detach(),
            "loss/critic": value_loss.detach(),
            "actor/entropy": parts["actor/entropy"],
            "behavior/return": parts["behavior/return"],
            "behavior/value": parts["behavior/value"],
            "behavior/imag_reward": parts["behavior/imag_reward"],
            "behavior/return_scale": scale.detach(),
            "behavior/return_low": self.return_norm.low.clone(),
            "behavior/return_high": self.return_norm.high.clone(),
            "behavior/advantage_abs": parts["behavior/advantage_abs_unscaled"] / scale,
        }
        return policy, value_loss, metrics
