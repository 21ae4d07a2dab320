"""What the run's speed settings accept, in a module without torch: the config's schema checks
them, and `dreamer --help` and `dreamer config` run without importing torch.

    PRECISIONS          `run.precision` (what each means: `dreamer.precision`)
    COMPILE_SETTINGS    `run.compile` (what each means: `dreamer.compiler`)
"""

PRECISIONS = ("auto", "fp32", "tf32", "bf16")
COMPILE_SETTINGS = ("auto", "on", "off")
