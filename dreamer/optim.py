"""Adam with global-norm gradient clipping, one per trained part (design section 4).

A non-finite loss or gradient skips the step: the fused Adam kernel is told so on the device (its
`found_inf`, the maximum over the ranks of a data-parallel run), leaves weights, moments and step
count as they were, and needs no host sync.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from dreamer import distributed
from dreamer.config import OptimConfig


class Optimizer:
    """Adam over `params`; `step(loss)` backpropagates, clips to `clip`, steps, and returns the
    gradient norm before clipping as a tensor (no host sync; non-finite when the step was skipped).
    Parts whose losses share one backward pass call `zero_grad`, then `clip_and_step` each."""

    def __init__(self, cfg: OptimConfig, params: Iterable[nn.Parameter]):
        self.params = [p for p in params if p.requires_grad]
        self.clip = cfg.clip
        self.adam = torch.optim.Adam(self.params, lr=cfg.lr, eps=cfg.eps, fused=True)
        # 1.0 skips the step; one persistent device tensor that the fused kernel reads
        self.adam.found_inf = torch.zeros((), device=self.params[0].device)

    def zero_grad(self) -> None:
        self.adam.zero_grad(set_to_none=True)

    def clip_and_step(self, loss: Tensor) -> Tensor:
        """Average the gradients over the ranks, clip and step after `loss` was backpropagated;
        skipped if the loss or gradient is non-finite."""
        distributed.average_gradients(self.params)
        norm = nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        nonfinite = (~(torch.isfinite(norm) & torch.isfinite(loss.detach()))).float()
        # In a data-parallel run every rank must skip together: the gradients are averaged, so a rank that
        # stepped while another skipped would leave the ranks' weights apart for good.
        self.adam.found_inf.copy_(distributed.maximum(nonfinite))
        self.adam.step()
        return norm

    @property
    def skipped(self) -> Tensor:
        """1.0 if the last step was skipped, else 0.0 (a device tensor)."""
        return self.adam.found_inf

    def step(self, loss: Tensor) -> Tensor:
        self.zero_grad()
        loss.backward()
        return self.clip_and_step(loss)

    def state_dict(self) -> dict:
        return self.adam.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.adam.load_state_dict(state)
        for group in self.adam.param_groups:  # a checkpoint from a foreach Adam would turn skipping off
            group.update(fused=True, foreach=None)
