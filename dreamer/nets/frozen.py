"""Frozen views: a module used without parameter gradients, e.g. the world model in imagination.

Flipping `requires_grad` off and on around each use (what a `frozen()` context does) has two costs:
autocast caches its bf16 copy of a weight only for leaves that require grad, so every call re-casts
every weight (15 imagination steps re-cast the world model 15 times per update); and a compiled
update sees a different `requires_grad` every time and recompiles. A view avoids both: a second
module tree of the same structure whose parameters are plain tensors without gradient, either
aliases of the live parameters (fp32) or, under bf16 autocast, bf16 copies of the weights that
autocast casts, refreshed once per update. Activations still carry gradients through the view,
which is how returns reach a continuous actor through the dynamics.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from dreamer.nets.layers import Float32

CAST_BY_AUTOCAST = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def _cast_by_autocast(module: nn.Module) -> bool:
    return isinstance(module, CAST_BY_AUTOCAST) and not isinstance(module, Float32)


class FrozenView:
    """`refresh()` returns the view of `module`, its weights current; call it once per update, inside
    the autocast context the view will be used in. Build it after the module is on its device.
    Submodules in `leave_out` are None in the view (parts the view's user never calls)."""

    def __init__(self, module: nn.Module, leave_out: tuple[nn.Module, ...] = ()):
        shared: dict[int, object] = {id(t): t for t in (*module.parameters(), *module.buffers())}
        shared.update({id(m): None for m in leave_out})
        self.view = copy.deepcopy(module, memo=shared)  # the structure; every tensor shared
        self.casts: list[tuple[nn.Module, str, Tensor]] = []  # (view module, name, live parameter)
        for sub in self.view.modules():
            for name, param in list(sub._parameters.items()):
                if param is None:
                    continue
                del sub._parameters[name]
                sub.register_buffer(name, param.detach(), persistent=False)  # an alias
                if _cast_by_autocast(sub):
                    self.casts.append((sub, name, param))
        self.dtype = torch.float32

    def _target_dtype(self) -> torch.dtype:
        device = self.casts[0][2].device.type if self.casts else "cpu"
        return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32

    @torch.no_grad()
    def refresh(self) -> nn.Module:
        dtype = self._target_dtype()
        if dtype != self.dtype:  # rebind: fp32 aliases, or new tensors of the autocast dtype
            for sub, name, param in self.casts:
                setattr(sub, name, param.detach() if dtype == torch.float32 else torch.empty_like(param, dtype=dtype))
            self.dtype = dtype
        if dtype != torch.float32 and self.casts:
            targets = [getattr(sub, name) for sub, name, _ in self.casts]
            torch._foreach_copy_(targets, [param for _, _, param in self.casts])  # one cast per weight
        return self.view
