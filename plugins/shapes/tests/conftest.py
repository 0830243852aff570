import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small batches of 32 tokens: on a shared 2-core machine intra-op threads mostly wait
    on each other. One thread, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
