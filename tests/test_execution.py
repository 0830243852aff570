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


# -- CUDA graphs: the bookkeeping, with a stand-in for the capture (no GPU needed) ----------------


class _Affine(torch.nn.Module):
    kind, prediction = "denoiser", "eps"

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(-1, 1, 3))

    def forward(self, x, t, cond=None):
        shift = cond["shift"][:, None] if cond else 0.0
        return x * self.weight + t[:, None] + shift


def _replaying_capture(calls):
    """Stands in for ``_capture_cuda_graph``: 'capture' runs the model once on the static
    inputs, and 'replay' reruns it on them and writes into the same output tensor, as a
    graph does, so results are right only if the wrapper refreshes the static inputs."""

    def capture(model, inputs):
        calls.append(inputs)
        output = model(*inputs)

        def replay():
            output.copy_(model(*inputs))

        return inputs, replay, output

    return capture


def test_cuda_graph_model_replays_with_fresh_inputs_one_graph_per_signature():
    model, calls = _Affine(), []
    graphs = execution.CudaGraphModel(model, capture=_replaying_capture(calls))
    assert graphs.kind == "denoiser" and graphs.prediction == "eps"  # attributes pass through
    first, second = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.full((4,), 0.5)
    with torch.no_grad():
        out1 = graphs(first, t, {"shift": torch.zeros(4)})
        out2 = graphs(second, t.clone() * 2, {"shift": torch.ones(4)})
        assert torch.equal(out2, model(second, t * 2, {"shift": torch.ones(4)}))
        assert torch.equal(out1, model(first, t, {"shift": torch.zeros(4)})), "a later replay overwrote an earlier result"
        assert len(calls) == 1
        graphs(torch.randn(2, 3), t[:2], {"shift": torch.zeros(2)})  # the last, smaller batch
        graphs(torch.randn(4, 3, dtype=torch.float64), t.double(), {"shift": torch.zeros(4, dtype=torch.float64)})
        graphs(first, t, {"shift": torch.zeros(4)})
    assert len(calls) == 3 and graphs.fallback is None


def test_cuda_graph_model_runs_eagerly_where_capture_fails():
    def refuse(model, inputs):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    model = _Affine()
    graphs = execution.CudaGraphModel(model, capture=refuse)
    x, t = torch.randn(4, 3), torch.zeros(4)
    with torch.no_grad(), pytest.warns(UserWarning, match="could not be captured as a CUDA graph"):
        out = graphs(x, t)
    assert torch.equal(out, model(x, t)) and graphs.fallback == "RuntimeError: operation not permitted when stream is capturing"
    with torch.no_grad():
        assert torch.equal(graphs(2 * x, t), model(2 * x, t))  # no second attempt, no second warning


def test_the_real_capture_refuses_cpu_tensors_and_the_model_runs_eagerly():
    model = _Affine()
    graphs = execution.CudaGraphModel(model)
    x, t = torch.randn(4, 3), torch.zeros(4)
    with torch.no_grad(), pytest.warns(UserWarning, match="need the model on a CUDA device"):
        assert torch.equal(graphs(x, t), model(x, t))


def test_cuda_graphs_are_refused_off_cuda_and_for_other_kinds():
    with pytest.raises(UsageError, match="needs a CUDA device"):
        execution.maybe_cuda_graphs(_Affine(), True, torch.device("cpu"))
    assert execution.maybe_cuda_graphs(model := _Affine(), False, torch.device("cpu")) is model
    if torch.cuda.is_available():
        tokens = _Affine()
        tokens.kind = "masked-tokens"
        with pytest.raises(UsageError, match="denoisers and flows"):
            execution.maybe_cuda_graphs(tokens, True, torch.device("cuda"))


def test_the_cli_refuses_cuda_graphs_on_the_cpu_before_writing(core, tmp_path):
    from condgen.testing import assert_one_line_error

    code, _, err = core("generate", "--plugin", "toy", "-n", "2", "--device", "cpu", "--cuda-graphs", "--out", tmp_path / "run")
    assert_one_line_error(code, err, "needs a CUDA device")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("guidance", [["none"], ["cfg=2"]])
def test_cuda_graph_runs_match_eager_runs(guidance):
    import condgen

    toy = condgen.load("toy")
    options = dict(n=37, condition={"component": ["north", "east"]}, guidance=guidance, sampler="dpmpp-2m", steps=12, seed=4, device="cuda", batch_size=16)
    eager = toy.generate(**options)
    graphs = toy.generate(**options, cuda_graphs=True)
    assert graphs.manifest["cuda_graphs"] is True
    a = torch.tensor([[s["x"], s["y"]] for s in eager.samples])
    b = torch.tensor([[s["x"], s["y"]] for s in graphs.samples])
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
