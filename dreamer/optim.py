"""Adam with global-norm gradient clipping, one per trained part (design section 4)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from dreamer.config import OptimConfig


class Optimizer:
    """Adam over `params`; `step(loss)` backpropagates, clips to `clip`, steps, and returns the
    gradient norm before clipping as a tensor (no host sync). Parts whose losses share one backward
    pass call `zero_grad`, then `clip_and_step` each."""

    def __init__(self, cfg: OptimConfig, params: Iterable[nn.Parameter]):
        self.params = [p for p in params if p.requires_grad]
        self.clip = cfg.clip
        self.adam = torch.optim.Adam(self.params, lr=cfg.lr, eps=cfg.eps, foreach=True)

    def zero_grad(self) -> None:
        self.adam.zero_grad(set_to_none=True)

    def clip_and_step(self) -> Tensor:
        norm = nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.adam.step()
        return norm

    def step(self, loss: Tensor) -> Tensor:
        self.zero_grad()
        loss.backward()
        return self.clip_and_step()

    def state_dict(self) -> dict:
        return self.adam.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.adam.load_state_dict(state)
