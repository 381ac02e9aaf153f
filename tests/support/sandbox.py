"""A copy of a test repo for a second online store: its own registry, the stack's data.

The registry is copied (so the other store's loads are recorded apart), the generated data is
linked, the stack's prediction folder left out; `feature_store.yaml` still names the stack's
Valkey, so only the environment says where the online store is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rtml.settings import Settings


def repo_copy(stack: Settings, root: Path) -> Path:
    """`root`, filled as described above."""
    for name in ("feature_store.yaml", ".feastignore"):
        shutil.copy(stack.repo_root / name, root / name)
    shutil.copytree(stack.repo_root / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data").mkdir()
    for item in stack.data_dir.iterdir():
        if item.name == "registry.db":
            shutil.copy(item, root / "data" / item.name)
        elif item.name != "predictions":
            (root / "data" / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return root
