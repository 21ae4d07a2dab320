"""Distributions and transforms of P1: symlog, two-hot, unimix categoricals, Bernoulli, Normal.

Written as plain tensor functions and light classes rather than `torch.distributions` objects:
they sit in the hot path of every update and need no argument validation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def one_hot(index: Tensor, classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(...,) class indices -> (..., classes) one-hots. Unlike `F.one_hot` it reads no value on
    the host (which checks the index range on CPU with two reductions and a sync)."""
    return (index[..., None] == torch.arange(classes, device=index.device)).to(dtype)


def symlog(x: Tensor) -> Tensor:
    """symlog(x) = sign(x) ln(1 + |x|)  (P1 eq. 9)."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of symlog: sign(x) (exp(|x|) - 1)  (P1 eq. 9)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


class TwoHot(nn.Module):
    """Two-hot encoding over bins evenly spaced in symlog space (P1 eq. 10-11).

    A scalar y becomes weights on the two bins around symlog(y), linear in symlog space; values
    beyond the outermost bins put all weight on the edge bin. The prediction is symexp(sum p_i b_i).
    """

    def __init__(self, bins: int, limit: float):
        super().__init__()
        spaced = torch.linspace(-limit, limit, bins)
        # exactly antisymmetric (b_i = -b_{K-1-i}, a middle bin exactly 0), which `mean` relies on
        self.register_buffer("bins", (spaced - spaced.flip(0)) / 2, persistent=False)
        self.half = bins // 2

    def encode(self, y: Tensor) -> Tensor:
        """(...,) raw values -> (..., K) two-hot weights."""
        x = symlog(y).clamp(self.bins[0], self.bins[-1])
        k = self.bins.numel()
        above = torch.bucketize(x, self.bins, right=True).clamp(1, k - 1)  # index of upper bin
        below = above - 1
        lo, hi = self.bins[below], self.bins[above]
        w_hi = (x - lo) / (hi - lo)
        return one_hot(below, k) * (1 - w_hi)[..., None] + one_hot(above, k) * w_hi[..., None]

    def mean(self, logits: Tensor) -> Tensor:
        """(..., K) logits -> (...,) predicted raw value.

        sum_i p_i b_i is summed as sum over the upper half of (p_i - p_mirror(i)) b_i, which is the
        same sum for antisymmetric bins: equal probabilities (the zero-initialised heads) then give
        exactly 0 however the sum is ordered or fused, where the plain sum leaves rounding noise.
        """
        probs = torch.softmax(logits.float(), -1)
        upper = probs[..., -self.half :]  # (..., K//2) bins above the middle
        mirrored = probs[..., : self.half].flip(-1)  # their mirror images below it
        return symexp(((upper - mirrored) * self.bins[-self.half :]).sum(-1))

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of (..., K) logits against the two-hot encoding of (...,) targets."""
        return -(self.encode(y.detach()) * torch.log_softmax(logits.float(), -1)).sum(-1)


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """Logits of probs = (1 - unimix) softmax(logits) + unimix / K  (P1 section 'robustness')."""
    if unimix == 0.0:
        return torch.log_softmax(logits.float(), -1)
    probs = torch.softmax(logits.float(), -1)
    probs = (1 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


class OneHotDist:
    """Categorical over the last axis with one-hot, straight-through samples.

    `logits` must already be normalised log-probabilities (see `unimix_logits`).
    """

    def __init__(self, logits: Tensor):
        self.logits = logits  # (..., K) log-probabilities

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    def sample(self) -> Tensor:
        """One-hot sample whose gradient is that of the probabilities (straight-through).

        Drawn by inverting the CDF with one uniform per row, several times faster on CPU than
        `torch.multinomial` for the (N, 32, 32) latents and exact in distribution.
        """
        probs = self.probs
        classes = probs.shape[-1]
        uniform = torch.rand((*probs.shape[:-1], 1), device=probs.device, dtype=probs.dtype)
        index = (probs.detach().cumsum(-1) < uniform).sum(-1).clamp(max=classes - 1)
        onehot = one_hot(index, classes, probs.dtype)
        return onehot + (probs - probs.detach())  # exact one-hot forward

    def mode(self) -> Tensor:
        return one_hot(self.logits.argmax(-1), self.logits.shape[-1], self.logits.dtype)

    def log_prob(self, onehot: Tensor) -> Tensor:
        return (onehot * self.logits).sum(-1)

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)


def categorical_kl(lhs_logits: Tensor, rhs_logits: Tensor) -> Tensor:
    """KL[lhs || rhs] over the last axis, both given as log-probabilities."""
    return (lhs_logits.exp() * (lhs_logits - rhs_logits)).sum(-1)


def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """-log p(target) for a Bernoulli with the given logits."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")


class BoundedNormal:
    """Normal(tanh(mu), sigma) with sigma = (max - min) sigmoid(x + 2) + min  (P1 continuous actor)."""

    def __init__(self, raw: Tensor, min_std: float, max_std: float):
        mu, std = raw.float().chunk(2, -1)
        self.mean = torch.tanh(mu)
        self.std = (max_std - min_std) * torch.sigmoid(std + 2.0) + min_std

    def sample(self) -> Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)  # reparameterised

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, x: Tensor) -> Tensor:
        z = (x - self.mean) / self.std
        return (-0.5 * z**2 - torch.log(self.std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std)).sum(-1)
