"""Recurrent state-space model with 32x32 discrete latents (P1 section 'world model learning').

State: `deter` h (N, D) from a LayerNorm GRU and `stoch` z (N, S, C) one-hot samples.
  GRU input   x = SiLU(LN(W [z_prev, a_prev]))
  recurrence  h = GRU(x, h_prev)
  prior       p(z | h)    = MLP_1(h) -> S x C logits
  posterior   q(z | h, e) = MLP_1([h, e]) -> S x C logits

Two rewrites keep the maths and save work in `observe`: the posterior's hidden layer on [h, e] is
split as W_h h + W_e e with W_e e computed for all T steps before the loop, and the prior logits,
which the loop never needs, are computed afterwards in one batched call.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dreamer.config import RSSMConfig
from dreamer.nets.dists import OneHotDist, unimix_logits
from dreamer.nets.layers import NORM_EPS, Dense, init_fan_avg_, linear


class Latent(NamedTuple):
    deter: Tensor  # (..., D)
    stoch: Tensor  # (..., S, C) one-hot

    def feat(self) -> Tensor:
        """[h, flatten(z)]: the input of every head, actor and critic. (..., D + S*C)"""
        return torch.cat([self.deter, self.stoch.flatten(-2)], -1)

    def detach(self) -> "Latent":
        return Latent(self.deter.detach(), self.stoch.detach())

    def map(self, fn: Callable[[Tensor], Tensor]) -> "Latent":
        return Latent(fn(self.deter), fn(self.stoch))


def stack(latents: list[Latent], dim: int = 1) -> Latent:
    return Latent(torch.stack([s.deter for s in latents], dim), torch.stack([s.stoch for s in latents], dim))


class LayerNormGRU(nn.Module):
    """GRU cell of P1: one Linear on [h, x] -> 3D (no bias), LayerNorm, then
    r = sigmoid(r); c = tanh(r * c); u = sigmoid(u - 1); h' = u c + (1 - u) h."""

    def __init__(self, in_dim: int, deter: int):
        super().__init__()
        self.linear = linear(deter + in_dim, 3 * deter, bias=False)
        self.norm = nn.LayerNorm(3 * deter, eps=NORM_EPS)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        parts = self.norm(self.linear(torch.cat([h, x], -1)))
        reset, cand, update = parts.chunk(3, -1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1 - update) * h


class RSSM(nn.Module):
    def __init__(self, cfg: RSSMConfig, embed_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.action_dim = action_dim
        stoch_flat = cfg.stoch * cfg.classes
        self.feat_dim = cfg.deter + stoch_flat
        self.initial = nn.Parameter(torch.zeros(cfg.deter))  # h_0 = tanh(initial)
        self.img_in = Dense(stoch_flat + action_dim, cfg.hidden)
        self.gru = LayerNormGRU(cfg.hidden, cfg.deter)
        self.prior_net = nn.Sequential(Dense(cfg.deter, cfg.hidden), linear(cfg.hidden, stoch_flat, output=True))
        # Posterior hidden layer on [h, e], kept as its two column blocks W_h and W_e (applied as
        # W_h h + W_e e) and initialised as the one Linear(deter + embed -> hidden) it is.
        weight = init_fan_avg_(torch.empty(cfg.hidden, cfg.deter + embed_dim), cfg.deter + embed_dim, cfg.hidden)
        self.post_deter = nn.Parameter(weight[:, : cfg.deter].clone())  # W_h (hidden, D)
        self.post_embed = nn.Parameter(weight[:, cfg.deter :].clone())  # W_e (hidden, E)
        self.post_norm = nn.LayerNorm(cfg.hidden, eps=NORM_EPS)
        self.post_out = linear(cfg.hidden, stoch_flat, output=True)

    # -- pieces ---------------------------------------------------------------------------------
    def _logits(self, raw: Tensor) -> Tensor:
        """(..., S*C) raw -> (..., S, C) unimix log-probabilities."""
        return unimix_logits(rearrange(raw, "... (s c) -> ... s c", s=self.cfg.stoch), self.cfg.unimix)

    def prior_logits(self, deter: Tensor) -> Tensor:
        return self._logits(self.prior_net(deter))

    def initial_state(self, batch: int) -> Latent:
        """h_0 = tanh(learned vector), z_0 = mode of the prior at h_0.  (batch, ...)"""
        deter = torch.tanh(self.initial).expand(batch, -1)
        stoch = OneHotDist(self.prior_logits(deter)).mode()
        return Latent(deter, stoch)

    def reset(self, state: Latent, action: Tensor, is_first: Tensor, init: Latent) -> tuple[Latent, Tensor]:
        """Where `is_first`, return to the initial state `init` and zero the previous action."""
        keep = (~is_first.bool()).to(action.dtype)[:, None]  # (N, 1)
        deter = state.deter * keep + init.deter * (1 - keep)
        stoch = state.stoch * keep[..., None] + init.stoch * (1 - keep[..., None])
        return Latent(deter, stoch), action * keep

    def _recur(self, state: Latent, action: Tensor) -> Tensor:
        action = action / action.detach().abs().clamp(min=1.0)  # a / max(1, |a|); one-hots unchanged
        x = self.img_in(torch.cat([state.stoch.flatten(-2), action], -1))
        return self.gru(x, state.deter)  # (N, D)

    def img_step(self, state: Latent, action: Tensor) -> Latent:
        """One prior step: h' = f(h, z, a), z' ~ p(z' | h')."""
        deter = self._recur(state, action)
        return Latent(deter, OneHotDist(self.prior_logits(deter)).sample())

    def obs_step(
        self, state: Latent, action: Tensor, embed_proj: Tensor, is_first: Tensor, init: Latent | None = None
    ) -> tuple[Latent, Tensor]:
        """One posterior step; `embed_proj` = W_e e (see `project_embed`), `init` the initial state
        (computed here when not given). Returns (state, posterior logits (N, S, C))."""
        init = self.initial_state(action.shape[0]) if init is None else init
        state, action = self.reset(state, action, is_first, init)
        deter = self._recur(state, action)
        hidden = F.silu(self.post_norm(F.linear(deter, self.post_deter) + embed_proj))
        logits = self._logits(self.post_out(hidden))  # (N, S, C)
        return Latent(deter, OneHotDist(logits).sample()), logits

    def project_embed(self, embed: Tensor) -> Tensor:
        """W_e e, the embed's share of the posterior hidden layer. (..., E) -> (..., hidden)"""
        return F.linear(embed, self.post_embed)

    # -- sequences ------------------------------------------------------------------------------
    def observe(
        self, embed: Tensor, prev_action: Tensor, is_first: Tensor, state: Latent | None = None
    ) -> tuple[Latent, Tensor, Tensor]:
        """Posterior over a sequence.

        embed (B, T, E), prev_action (B, T, A) = action before step t, is_first (B, T).
        Returns posterior states (B, T, ...), posterior and prior logits (B, T, S, C).
        """
        batch, steps = is_first.shape
        init = self.initial_state(batch)
        state = init if state is None else state
        embed_proj = self.project_embed(embed)  # (B, T, hidden), outside the loop
        states, post_logits = [], []
        for t in range(steps):
            state, logits = self.obs_step(state, prev_action[:, t], embed_proj[:, t], is_first[:, t], init)
            states.append(state)
            post_logits.append(logits)
        post = stack(states)
        prior_logits = self.prior_logits(post.deter)  # (B, T, S, C), one batched call
        return post, torch.stack(post_logits, 1), prior_logits

    def imagine(
        self,
        start: Latent,
        policy: Callable[[Latent], tuple[Tensor, Tensor]],
        horizon: int,
        dynamics_grad: bool,
    ) -> tuple[Latent, Tensor, Tensor]:
        """Roll the prior forward under `policy` for `horizon` steps from `start` (N, ...).

        `policy(state) -> (action, aux)` runs with gradients as its caller set them; the dynamics
        run without a tape unless `dynamics_grad` (needed only to backpropagate returns into
        continuous actions). Returns states s_0..s_H (N, H+1, ...), actions a_0..a_{H-1} (N, H, A)
        and the policy's aux outputs (N, H, ...).
        """
        states, actions, auxes = [start], [], []
        state = start
        for _ in range(horizon):
            action, aux = policy(state)
            with torch.set_grad_enabled(dynamics_grad and torch.is_grad_enabled()):
                state = self.img_step(state, action)
            states.append(state)
            actions.append(action)
            auxes.append(aux)
        return stack(states), torch.stack(actions, 1), torch.stack(auxes, 1)
