"""Optional env packages: import them or fail with how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from dreamer.config import ConfigError


def require(module: str, extra: str, purpose: str = "this env") -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{purpose} needs the {module!r} package, which is not installed; "
            f"install it with: pip install 'dreamer-rl[{extra}]'"
        ) from None
