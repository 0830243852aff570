"""Every test gets fresh plugin state and a private weights cache (condgen's `condgen_env`)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated(condgen_env):
    yield
