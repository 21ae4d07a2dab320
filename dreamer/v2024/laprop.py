"""The 2024 recipe's optimizer (2024 = arXiv 2301.04104v2 / Nature; `design-2024.md` section 1).

Per parameter tensor and update t = 1, 2, ...:

    AGC        g <- g * min(1, agc * max(pmin, |theta|) / |g|)        (Frobenius norms, theta before the step)
    RMS        v <- b2 v + (1 - b2) g^2,   u = g / (sqrt(v / (1 - b2^t)) + eps)
    momentum   m <- b1 m + (1 - b1) u,     m_hat = m / (1 - b1^t)
    step       theta <- theta - lr * min(t - 1, warmup) / warmup * m_hat

The RMS normalisation before the momentum is LaProp; `torch.optim.Adam` takes the momentum of the
raw gradient first, so it is a different optimizer. The first update has a learning rate of 0 (its
moments still move). No weight decay, no global-norm clip.

`skip` (optional, a 0/1 device tensor) leaves parameters and moments as they were without a host
sync: the package stops a run after `run.max_nonfinite` skipped updates in a row, for both
recipes. The reference skips nothing (it only guards fp16); with finite gradients, as in every
healthy run, the result is the reference's. The step counter advances on a skipped update.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor


class LaProp(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Tensor], lr: float, beta1: float, beta2: float, eps: float,
                 agc: float, pmin: float, warmup: int):
        defaults = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, agc=agc, pmin=pmin, warmup=warmup)
        super().__init__(params, defaults)

    def learning_rate(self, group: dict, step: int) -> float:
        """lr of update `step` (1-based): linear warm-up from 0 over `warmup` earlier updates."""
        warmup = group["warmup"]
        return group["lr"] * (min(step - 1, warmup) / warmup if warmup else 1.0)

    @torch.no_grad()
    def step(self, closure=None, skip: Tensor | None = None) -> None:  # type: ignore[override]
        keep = None if skip is None else 1.0 - skip.float()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p] = {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)}
            step = self.state[params[0]]["step"] + 1  # every tensor of a group steps together
            for p in params:
                self.state[p]["step"] = step
            m = [self.state[p]["m"] for p in params]
            v = [self.state[p]["v"] for p in params]
            b1, b2 = group["beta1"], group["beta2"]

            # AGC on the raw gradient: the cap over the gradient's norm, at most 1
            limits = torch._foreach_maximum(torch._foreach_norm(params), group["pmin"])
            torch._foreach_mul_(limits, group["agc"])
            norms = torch._foreach_norm([p.grad for p in params])
            torch._foreach_maximum_(norms, torch.finfo(torch.float32).tiny)  # a zero gradient stays zero
            factors = torch._foreach_div(limits, norms)
            torch._foreach_clamp_max_(factors, 1.0)
            grads = torch._foreach_mul([p.grad for p in params], factors)
            if keep is not None:  # a skipped step: zero gradients, and the decays below undone
                grads = [torch.where(keep > 0, g, 0.0) for g in grads]

            # RMS normalisation, then momentum on the normalised step (LaProp)
            decay2 = b2 if keep is None else keep * b2 + (1.0 - keep)  # 1 on a skipped step
            torch._foreach_mul_(v, decay2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(torch._foreach_div(v, 1 - b2**step))
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_div_(grads, denom)  # u
            decay1 = b1 if keep is None else keep * b1 + (1.0 - keep)
            torch._foreach_mul_(m, decay1)
            torch._foreach_add_(m, grads, alpha=1 - b1)
            rate = -self.learning_rate(group, step) / (1 - b1**step)
            if keep is None:
                torch._foreach_add_(params, m, alpha=rate)
            else:
                torch._foreach_add_(params, torch._foreach_mul(m, keep * rate))
