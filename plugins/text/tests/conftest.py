import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The LMs decode a token at a time: on a shared 2-core machine, intra-op threads
    mostly wait on each other (a 4x256 layer norm took 15 ms). One thread, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
