import pytest
import torch

from condgen import execution
from condgen.errors import UsageError


def test_devices():
    assert execution.resolve_device("cpu").type == "cpu"
    assert execution.resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(UsageError, match="unknown device"):
        execution.resolve_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            execution.resolve_device("cuda:0")


def test_dtype_policy():
    cpu = torch.device("cpu")
    assert execution.resolve_dtype("auto", cpu) is None
    assert execution.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert execution.resolve_dtype("float32", cpu) is None
    with pytest.raises(UsageError):
        execution.resolve_dtype("float8", cpu)


def test_per_sample_noise_depends_on_seed_and_index_only():
    whole = execution.SampleRNG(3, range(10)).randn((4,))
    split = torch.cat([execution.SampleRNG(3, range(0, 3)).randn((4,)), execution.SampleRNG(3, range(3, 10)).randn((4,))])
    assert torch.equal(whole, split)
    shuffled = execution.SampleRNG(3, [7, 2]).randn((4,))
    assert torch.equal(shuffled, whole[[7, 2]])
    assert not torch.equal(execution.SampleRNG(4, range(10)).randn((4,)), whole)
    assert len({execution.sample_seed(0, i) for i in range(1000)}) == 1000


def test_categorical_draws_follow_probabilities():
    rng = execution.SampleRNG(0, range(4000))
    probs = torch.tensor([0.1, 0.2, 0.7]).expand(4000, 3)
    freq = torch.bincount(rng.categorical(probs), minlength=3).double() / 4000
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64), atol=0.03)


def test_batches_and_memory_budget(monkeypatch):
    assert execution.plan_batches(range(10), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(UsageError):
        execution.plan_batches(range(3), 0)
    monkeypatch.setenv("CONDGEN_MEMORY_BUDGET", str(10 * 1024))
    assert execution.auto_batch_size(1000, 1024, torch.device("cpu")) == 10
    assert execution.auto_batch_size(5, 1024, torch.device("cpu")) == 5
    assert execution.auto_batch_size(1000, 1 << 40, torch.device("cpu")) == 1
