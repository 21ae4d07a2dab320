"""Crafter's `Env` with one change: runs are reproducible across processes.

Crafter keeps each chunk's creatures in a `set` and despawns `creatures[random index]` of it, so
which creature goes depends on the set's order, i.e. on memory addresses: two processes with the
same seed and actions (or a run and its continuation from a checkpoint) drift apart. Here the
creatures are ordered by position (one object per cell) first; the choice stays uniform.
Importing this module needs the `crafter` package.
"""

from __future__ import annotations

import crafter


class OrderedCrafter(crafter.Env):
    def _balance_chunk(self, chunk, objs):
        super()._balance_chunk(chunk, sorted(objs, key=lambda obj: (int(obj.pos[0]), int(obj.pos[1]))))
