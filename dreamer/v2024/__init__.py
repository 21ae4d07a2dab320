"""The 2024 recipe (2024 = arXiv 2301.04104v2 / Nature; `design-2024.md`): its own modules, which
`recipe: 2024` will choose in one place. Built so far: the optimizer (laprop), layers, encoder,
decoder, RSSM, heads, two-hot, the replay-value targets (returns), the world model and its loss,
the imagination and replay-value losses (behavior), one update (learner), and the size presets with their parameter
counts (sizes)."""
