"""The 2024 recipe's RSSM with its block GRU core (design-2024.md section 3).

One step from (h, z, a), D = deter, d = hidden, G = blocks:
  e   = [SiLU(RMSNorm(W0 h + b0)), SiLU(RMSNorm(W1 flat(z) + b1)), SiLU(RMSNorm(W2 a + b2))]   (3d)
  y   = SiLU(RMSNorm(BlockLinear_G([h_g, e] for each block g)))        one norm over all D units
  r, c, u per block = split(BlockLinear_G(y_g)) in thirds               no norm on the gates
  h'  = sigma(u - 1) tanh(sigma(r) c) + (1 - sigma(u - 1)) h
Blocks mix only through W0 h (dense in h) and the shared RMSNorm statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from dreamer.nets.dists import OneHotDist, unimix_logits
from dreamer.nets.rssm import Latent
from dreamer.v2024.layers import BlockLinear, Linear, NormedLinear, RMSNorm


class BlockGRU(nn.Module):
    def __init__(self, deter: int, hidden: int, stoch_flat: int, action_dim: int, blocks: int, eps: float):
        super().__init__()
        self.blocks = blocks
        self.dynin = nn.ModuleList([NormedLinear(deter, hidden, eps), NormedLinear(stoch_flat, hidden, eps),
                                    NormedLinear(action_dim, hidden, eps)])
        self.hidden = BlockLinear(deter + blocks * 3 * hidden, deter, blocks)  # block g reads [h_g, e]
        self.hidden_norm = RMSNorm(deter, eps)
        self.gates = BlockLinear(deter, 3 * deter, blocks)

    def forward(self, deter: Tensor, stoch_flat: Tensor, action: Tensor) -> Tensor:
        """h (N, D), flat(z) (N, S*C), a (N, A) -> h' (N, D)."""
        action = action / action.detach().abs().clamp(min=1.0)  # a / sg(max(1, |a|))
        e = torch.cat([layer(x) for layer, x in zip(self.dynin, (deter, stoch_flat, action))], -1)  # (N, 3d)
        h = rearrange(deter, "n (g k) -> n g k", g=self.blocks)  # (N, G, D/G)
        x = torch.cat([h, repeat(e, "n e -> n g e", g=self.blocks)], -1)  # (N, G, D/G + 3d)
        y = F.silu(self.hidden_norm(rearrange(self.hidden(x), "n g k -> n (g k)")))  # (N, D)
        gates = self.gates(rearrange(y, "n (g k) -> n g k", g=self.blocks))  # (N, G, 3D/G)
        reset, cand, update = (rearrange(part, "n g k -> n (g k)") for part in gates.chunk(3, -1))
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1 - update) * deter


class RSSM(nn.Module):
    """The 2024 RSSM (design-2024.md 3): a zero initial state, resets that zero h, z and the
    previous action before the step, the block GRU core, a prior of two hidden layers and a
    posterior of one on [h, tokens], 1% unimix categoricals with straight-through samples."""

    def __init__(self, deter: int, hidden: int, stoch: int, classes: int, blocks: int, unimix: float,
                 action_dim: int, token_dim: int, eps: float):
        super().__init__()
        self.deter, self.stoch, self.classes, self.unimix = deter, stoch, classes, unimix
        self.core = BlockGRU(deter, hidden, stoch * classes, action_dim, blocks, eps)
        self.prior = nn.Sequential(NormedLinear(deter, hidden, eps), NormedLinear(hidden, hidden, eps),
                                   Linear(hidden, stoch * classes))
        self.posterior = nn.Sequential(NormedLinear(deter + token_dim, hidden, eps), Linear(hidden, stoch * classes))

    def initial_state(self, batch: int, device: torch.device | None = None) -> Latent:
        return Latent(torch.zeros(batch, self.deter, device=device),
                      torch.zeros(batch, self.stoch, self.classes, device=device))

    def _logits(self, raw: Tensor) -> Tensor:
        """(..., S*C) -> (..., S, C) log-probabilities of 0.99 softmax + 0.01 / C."""
        return unimix_logits(rearrange(raw, "... (s c) -> ... s c", s=self.stoch), self.unimix)

    def obs_step(self, state: Latent, action: Tensor, tokens: Tensor, is_first: Tensor) -> tuple[Latent, Tensor]:
        """One posterior step; returns the state and the posterior logits (N, S, C)."""
        keep = (~is_first.bool()).to(action.dtype)[:, None]  # (N, 1)
        deter = self.core(state.deter * keep, (state.stoch * keep[..., None]).flatten(-2), action * keep)
        logits = self._logits(self.posterior(torch.cat([deter, tokens], -1)))
        return Latent(deter, OneHotDist(logits).sample()), logits

    def img_step(self, state: Latent, action: Tensor) -> Latent:
        """One prior step: h' = core(h, z, a), z' ~ p(z' | h')."""
        deter = self.core(state.deter, state.stoch.flatten(-2), action)
        return Latent(deter, OneHotDist(self.prior_logits(deter)).sample())

    def prior_logits(self, deter: Tensor) -> Tensor:
        return self._logits(self.prior(deter))
