"""The 2024 recipe's imagination and replay-value losses (design-2024.md 6.2 and 6.4), written
with the P1 building blocks (`lambda_return`, `actor_loss`, `critic_loss`, `ReturnNorm`) fed the
2024 inputs.

Imagination, states s_0..s_H (N, H+1): r_i and c_i are the reward head's mean and the continue
head's probability at s_i (c_i is the discount itself: no extra gamma), v_i the fast critic's mean.
    R = lambda_return(r, v, c, lam)               disc 1, bootstrapping on v_H
    w_i = sg(prod_{j<=i} c_j)                     including the start state's c_0
    A_i = (R_i - v_i) / S                         S from ReturnNorm
    policy = -mean(w (sg(A) log pi(a_i) + eta H)) REINFORCE for discrete and continuous actions
    value  = mean(w (CE(twohot(sg R)) + slow_reg CE(twohot(sg v_slow))))
Replay value, over the T steps of each replayed window: targets `returns.replay_value_returns`,
bootstrapped on R_0 of the rollouts started there, and weights `returns.replay_value_weight`.
"""

from __future__ import annotations

from torch import Tensor

from dreamer.behavior import (ReturnNorm, actor_loss_terms, advantage, critic_loss, lambda_return,
                              scale_actor_loss)
from dreamer.v2024.twohot import RawTwoHot


def imagination_losses(reward: Tensor, cont: Tensor, value: Tensor, slow_value: Tensor, critic_logits: Tensor,
                       logp: Tensor, entropy: Tensor, twohot: RawTwoHot, lam: float, eta: float, slow_reg: float
                       ) -> tuple[tuple[Tensor, Tensor], Tensor, Tensor]:
    """reward, cont, value (N, H+1); slow_value (N, H); critic_logits (N, H+1, K); logp, entropy
    (N, H) of the actions taken at s_0..s_{H-1}. Returns the policy loss's two terms before the
    division by S (`dreamer.behavior.actor_loss`), the value loss and R (N, H); the policy loss
    is `policy_loss(terms, R, norm)` once every rank's R is known."""
    returns = lambda_return(reward, value, cont, lam)  # (N, H)
    weight = cont.cumprod(1)[:, :-1].detach()  # (N, H)
    terms = actor_loss_terms(advantage(returns, value).detach() * logp, entropy, weight, eta)
    value_loss = critic_loss(twohot, critic_logits[:, :-1], returns, slow_value, weight, slow_reg)
    return terms, value_loss, returns


def policy_loss(terms: tuple[Tensor, Tensor], returns: Tensor, norm: ReturnNorm) -> tuple[Tensor, Tensor]:
    """The percentiles of R (of every rank) into `norm`, then the policy loss with A = (R - v) / S;
    returns the loss and S."""
    norm.update(returns)
    scale = norm.scale()
    return scale_actor_loss(*terms, scale), scale


def replay_value_loss(critic_logits: Tensor, returns: Tensor, slow_value: Tensor, weight: Tensor,
                      twohot: RawTwoHot, slow_reg: float) -> Tensor:
    """critic_logits (B, T-1, K) at the replayed posterior features (their gradient reaches the
    RSSM and encoder), returns, slow_value and weight (B, T-1): the mean over all B x (T-1)
    entries, masked ones included in the denominator."""
    return critic_loss(twohot, critic_logits, returns, slow_value, weight, slow_reg)
