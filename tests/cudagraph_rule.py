"""The rule CUDA graphs (cudagraph trees, `mode="reduce-overhead"`) impose on a compiled function's
outputs, emulated on the CPU: the outputs live in the graphs' shared memory pool, and the next
call of any compiled function overwrites those still alive unless a backward through them is
pending. Outputs that a caller reads after another compiled call must have been copied out
(`compiler.outside_pool`); here whatever was not turns to NaN, so the test sees it."""

from __future__ import annotations

import torch
from torch.utils._pytree import tree_flatten

from dreamer import compiler


class Call:
    """One compiled call's outputs; pending while a backward through them has not run."""

    def __init__(self, outputs: list[torch.Tensor]):
        self.outputs = outputs  # strong references: the pool's memory is overwritten whoever holds it
        self.pending = False
        node = next((t.grad_fn for t in outputs if t.grad_fn is not None), None)
        if node is not None:
            self.pending = True
            node.register_hook(self._backward_ran)

    def _backward_ran(self, *_):
        self.pending = False

    def overwrite(self) -> None:
        with torch.no_grad():
            for tensor in self.outputs:
                if tensor.is_floating_point():
                    tensor.detach().fill_(float("nan"))
                elif tensor.dtype == torch.bool:
                    tensor.detach().fill_(True)
                else:
                    tensor.detach().fill_(-1)


class CudaGraphRule:
    """`install(monkeypatch)` wraps `compiler.Compiled.__call__` with the rule."""

    def __init__(self):
        self.calls: list[Call] = []
        self.overwritten = 0  # outputs overwritten so far (the rule did apply)

    def install(self, monkeypatch) -> "CudaGraphRule":
        call = compiler.Compiled.__call__
        rule = self

        def under_the_rule(compiled, *args):
            rule.before_call()
            out = call(compiled, *args)
            rule.calls.append(Call([t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]))
            return out

        monkeypatch.setattr(compiler.Compiled, "__call__", under_the_rule)
        return self

    def before_call(self) -> None:
        kept = []
        for call in self.calls:
            if call.pending:
                kept.append(call)
            else:
                call.overwrite()
                self.overwritten += len(call.outputs)
        self.calls = kept
