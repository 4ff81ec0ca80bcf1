"""Load the Lambda handler module the way Lambda does: from functions/update_budget/app.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ipass_local.template import REPO_ROOT

HANDLER_PATH = REPO_ROOT / "functions" / "update_budget" / "app.py"
MODULE_NAME = "update_budget_app"


def load_handler_module(path: Path = HANDLER_PATH) -> ModuleType:
    """Import (once per process) the handler module; later calls return the same module."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module
