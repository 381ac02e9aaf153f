"""The sensors scenario in the tests' sandbox: its views applied, a detector model file trained."""

from __future__ import annotations

import pytest

from rtml.features.online import apply_repo
from rtml.settings import Settings
from tests.sensors.sample import detector


@pytest.fixture(scope="session")
def sensors(valkey: Settings) -> Settings:
    """Settings of the sensors scenario on the tests' Valkey and sandbox (views applied)."""
    s = Settings(scenario="sensors", repo_root=valkey.repo_root,
                 redis_address=valkey.redis_address)
    apply_repo(s)
    detector().save(s.artifacts_dir / "sensors" / "test-model.zip")
    return s
