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
from torch import nn

from dreamer.nets.layers import Float32

CAST_BY_AUTOCAST = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def _cast_by_autocast(module: nn.Module) -> bool:
    return isinstance(module, CAST_BY_AUTOCAST) and not isinstance(module, Float32)


class FrozenView:
    """`refresh()` returns the view of `module`, its weights current; call it once per update, inside
    the autocast context the view will be used in (and outside a compiled region: it is cheap,
    a check per parameter and buffer and one list copy). `view` is the module as last refreshed.
    Submodules in `leave_out` are None in the view (parts the view's user never calls).

    A move of the live module (`.to(device)`, `.double()`, `.half()`) keeps its Parameter objects
    but swaps their data, and replaces every buffer with a new tensor; `refresh()` follows both:
    parameters by their data pointer, buffers by identity with the live module's."""

    def __init__(self, module: nn.Module, leave_out: tuple[nn.Module, ...] = ()):
        shared: dict[int, object] = {id(t): t for t in (*module.parameters(), *module.buffers())}
        shared.update({id(m): None for m in leave_out})
        self.view = copy.deepcopy(module, memo=shared)  # the structure; every tensor shared
        self.entries: list[tuple[nn.Module, str, nn.Parameter, bool]] = []  # (view module, name, live, cast?)
        for sub in self.view.modules():
            for name, param in list(sub._parameters.items()):
                if param is None:
                    continue
                del sub._parameters[name]
                sub.register_buffer(name, param.detach(), persistent=False)  # an alias
                self.entries.append((sub, name, param, _cast_by_autocast(sub)))
        live = dict(module.named_modules())
        self.buffer_owners: list[tuple[nn.Module, nn.Module]] = [  # (view module, live module) holding buffers
            (sub, live[name]) for name, sub in self.view.named_modules() if live[name]._buffers]

    @torch.no_grad()
    def refresh(self) -> nn.Module:
        """Rebind what is stale (after `.to(device)` or a change of precision), then copy the live
        weights into the cast ones: one conversion per weight and update."""
        targets, sources = [], []
        device = self.entries[0][2].device.type if self.entries else "cpu"
        autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        for sub, name, param, cast in self.entries:
            held = getattr(sub, name)
            dtype = autocast if cast and autocast is not None else param.dtype
            if dtype == param.dtype:
                if held.data_ptr() != param.data_ptr() or held.dtype != param.dtype:
                    setattr(sub, name, param.detach())
                continue
            if held.dtype != dtype or held.device != param.device:
                held = torch.empty_like(param, dtype=dtype)
                setattr(sub, name, held)
            targets.append(held)
            sources.append(param)
        if targets:
            torch._foreach_copy_(targets, sources)
        for sub, owner in self.buffer_owners:
            for name, buffer in owner._buffers.items():
                if sub._buffers.get(name) is not buffer:
                    sub._buffers[name] = buffer
        return self.view
