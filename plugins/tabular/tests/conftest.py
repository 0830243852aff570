import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def gen(condgen_env):
    """A fresh tabular generator (fresh plugin state, private cache)."""
    import condgen

    return condgen.load("tabular")
