import json
import math

import condgen
import pytest
import torch
from condgen import SampleRNG, guided
from condgen.testing import assert_one_line_error, invoke_core
from condgen_text import data, train
from condgen_text.model import (
    BOS_ID,
    EOS_ID,
    TopicLM,
    TransformerLM,
    add_codes,
    pad_sequences,
    score_texts,
)
from condgen_text.writer import JsonlTextWriter

# The core's guidance and sampler, as any plugin reaches them.
GeDi = condgen.find_guidance("gedi").load()
ar = condgen.find_sampler("ar").load()

TINY = {"width": 32, "depth": 2, "heads": 2, "context": 48}


@pytest.fixture(scope="module")
def tiny():
    """A tokenizer, base LM and CC-LM small enough to build in a second (untrained)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    quotes = [q for q, _ in data.topic_quotes("train")[:300]]
    tokenizer = train.train_tokenizer(quotes, vocab=320)
    base = TransformerLM(320, **TINY)
    cclm = add_codes(base, len(data.TOPICS), torch.Generator().manual_seed(0))
    with torch.no_grad():  # make the codes differ clearly, so posteriors are not all uniform
        cclm.code_embed.weight += torch.randn(len(data.TOPICS), 32, generator=torch.Generator().manual_seed(1))
    return TopicLM(base, cclm, tokenizer, data.TOPICS).eval()


def test_quotes_are_cleaned_and_splits_are_disjoint_and_stable():
    pairs = {s: data.topic_quotes(s) for s in ("train", "judge", "test")}
    texts = {s: {q for q, _ in p} for s, p in pairs.items()}
    assert not texts["train"] & texts["judge"] and not texts["train"] & texts["test"] and not texts["judge"] & texts["test"]
    assert all("\n" not in q and "  " not in q and data.MIN_CHARS <= len(q) <= data.MAX_CHARS for q in texts["test"])
    assert {label for _, label in pairs["train"]} == set(range(len(data.TOPICS)))
    assert data.split_of("Hello, world -- a quote") == data.split_of("Hello, world -- a quote")
    assert not set(data.base_corpus()) & (texts["judge"] | texts["test"])  # the base LM never sees held-out quotes


def test_hybrid_loss_posterior_matches_a_hand_computation(tiny):
    cclm = tiny.cclm
    sequences = [[5, 17, 40, EOS_ID], [9, 3, EOS_ID]]
    ids, valid = pad_sequences(sequences)
    labels = torch.tensor([2, 4])
    with torch.no_grad():
        generative, discriminative = train.gedi_losses(cclm, ids, valid, labels)
    # By hand: log P(x_i | code, x_<i) token by token, each code as the first input token.
    per_token = [[[] for _ in sequences] for _ in data.TOPICS]
    for c in range(len(data.TOPICS)):
        for b, seq in enumerate(sequences):
            context = [320 + c]
            for token in seq:
                with torch.no_grad():
                    logits, _ = cclm(torch.tensor([context]))
                per_token[c][b].append(float(torch.log_softmax(logits[0, -1].double(), -1)[token]))
                context.append(token)

    def posterior(b, length):
        normalised = [sum(per_token[c][b][:length]) / length for c in range(len(data.TOPICS))]
        log_norm = math.log(sum(math.exp(v) for v in normalised))
        return [v - log_norm for v in normalised]

    hand_d = -sum(posterior(b, len(seq))[int(labels[b])] for b, seq in enumerate(sequences)) / len(sequences)
    hand_g = -sum(sum(per_token[int(labels[b])][b]) for b in range(len(sequences))) / sum(len(s) for s in sequences)
    assert discriminative.item() == pytest.approx(hand_d, rel=1e-4)
    assert generative.item() == pytest.approx(hand_g, rel=1e-4)
    # score_texts reports the same posterior for a text (here the first one without <|eos|>).
    reported = score_texts(tiny, [[]], [sequences[0][:-1]])[0]["topic_posterior"]
    hand = posterior(0, len(sequences[0]) - 1)
    for c, topic in enumerate(data.TOPICS):
        assert reported[topic] == pytest.approx(math.exp(hand[c]), abs=2e-4)
    assert max(reported.values()) - min(reported.values()) > 0.01  # not trivially uniform


def test_gedi_step_reweights_the_base_lm_by_the_bayes_posterior(tiny):
    omega = 7.0
    model = guided(tiny, GeDi(omega, cclm=tiny, key="topic", codes=len(data.TOPICS)))
    tokens = torch.full((1, 1), BOS_ID)
    cond = {"topic": torch.tensor([3]), "prompt": ["The computer"]}
    with torch.no_grad():
        out, _ = model(tokens, cond)
        prompt = tiny.encode_prompt("The computer")
        base_logits, _ = tiny.base(torch.tensor([[BOS_ID, *prompt]]))
        per_code = torch.stack([torch.log_softmax(tiny.cclm(torch.tensor([[320 + c, *prompt]]))[0][0, -1], -1) for c in range(len(data.TOPICS))])
    # First step: n = 1 and the prefix likelihood is zero, so P(c | v) = softmax_c log P(v | c).
    posterior = per_code - torch.logsumexp(per_code, 0, keepdim=True)
    expected = torch.log_softmax(base_logits[0, -1], -1) + omega * posterior[3]
    assert torch.allclose(out[0], expected, atol=1e-4)


class NoCache(torch.nn.Module):
    """The same model, but it never hands back a cache: ar then resends the whole sequence."""

    kind = "autoregressive"

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        for attr in ("bos_id", "eos_id", "vocab_size", "num_classes", "sample_shape"):
            setattr(self, attr, getattr(inner, attr))

    def forward(self, tokens, cond, cache=None):
        return self.inner(tokens, cond, None)[0], None


@pytest.mark.parametrize("guidance", [None, "gedi"])
def test_key_value_caching_gives_the_same_tokens_as_no_caching(tiny, guidance):
    cond = {"topic": torch.tensor([0, 5, -1, 2]), "prompt": ["Science is", None, "A long prompt about work and money", "Love"]}

    def sample(model):
        if guidance:
            model = guided(model, GeDi(10.0, cclm=model, key="topic", codes=len(data.TOPICS), rho=0.7))
        with torch.no_grad():
            return ar(model, (4, 20), cond, steps=20, rng=SampleRNG(0, [0, 1, 2, 3], torch.device("cpu"))).x

    cached, uncached = sample(tiny), sample(NoCache(tiny))
    assert torch.equal(cached, uncached)


def test_a_sample_does_not_depend_on_the_other_prompts_in_its_batch(tiny):
    def sample(indices, prompts, topics):
        cond = {"topic": torch.tensor(topics), "prompt": prompts}
        with torch.no_grad():
            return ar(tiny, (len(indices), 15), cond, steps=15, rng=SampleRNG(3, indices, torch.device("cpu"))).x

    alone = sample([1], ["Politics"], [2])
    together = sample([0, 1], ["An entirely different and longer prompt", "Politics"], [4, 2])
    assert torch.equal(alone[0], together[1])


def test_short_training_lowers_both_gedi_losses(tiny):
    torch.manual_seed(0)
    pairs = [p for p in data.topic_quotes("train") if len(p[0]) < 120][:48]
    encoded = train.encode_quotes(tiny.tokenizer, [q for q, _ in pairs], TINY["context"])
    labels = torch.tensor([label for _, label in pairs])
    cclm = add_codes(tiny.base, len(data.TOPICS), torch.Generator().manual_seed(0))
    ids, valid = pad_sequences(encoded)

    def losses(_):
        generative, discriminative = train.gedi_losses(cclm, ids, valid, labels)
        return {"L_g": (train.HYBRID_LAMBDA, generative), "L_d": (1 - train.HYBRID_LAMBDA, discriminative)}

    with torch.no_grad():
        before = {k: float(v) for k, (_, v) in losses(None).items()}
    train._loop(cclm, 40, 3e-3, 5, lambda: [None], losses, None)
    with torch.no_grad():
        after = {k: float(v) for k, (_, v) in losses(None).items()}
    assert after["L_g"] < before["L_g"] - 0.5, (before, after)
    assert after["L_d"] < before["L_d"] - 0.2, (before, after)


def test_length_batches_cover_every_quote_once_within_the_budget():
    lengths = [3, 50, 7, 7, 20, 1, 33, 12] * 10
    batches = train.length_batches(lengths, 100, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 100 for b in batches)


def test_jsonl_writer_round_trip_and_collection(tmp_path):
    writer = JsonlTextWriter()
    samples = [{"topic": "science", "prompt": "", "text": "Quarks, \"quoted\"\nand ünïcode", "tokens": 5, "scores": {"base_perplexity": 12.5}}]
    writer.write(samples[0], tmp_path / "000000.jsonl")
    assert writer.read(tmp_path / "000000.jsonl") == samples[0]
    jsonl, text = writer.write_collection(tmp_path, [7], samples)
    assert json.loads(jsonl.read_text().splitlines()[0])["index"] == 7
    assert "ünïcode" in text.read_text()


def test_bad_input_gets_one_line_and_a_nonzero_exit(tmp_path):
    code, _, err = invoke_core("generate", "--plugin", "text", "-c", "topic=sience", "-n", "1", "--out", tmp_path / "a")
    assert_one_line_error(code, err, "did you mean 'science'")
    long_prompt = ("word " * 100)[:290]
    code, _, err = invoke_core("generate", "--plugin", "text", "-c", "topic=work", "--prompt", long_prompt, "--steps", "120", "-n", "1", "--out", tmp_path / "b")
    assert_one_line_error(code, err, "context of 128 tokens")


def test_cclm_stage_writes_weights_the_generator_loads_and_samples(tiny, tmp_path):
    """The CC-LM stage on a tiny base checkpoint, then generation (GeDi by default) from it."""
    base_path, out = tmp_path / "tiny.base.safetensors", tmp_path / "tiny.safetensors"
    tensors = {f"base.{k}": v for k, v in tiny.base.state_dict().items()}
    condgen.save_checkpoint(base_path, tensors, {"stage": "base", "base": tiny.base.config, "tokenizer": tiny.tokenizer.to_str()}, "text")
    train.train_cclm(base_path, out, steps=2, quotes_per_batch=4)
    generator = condgen.load("text")
    run = generator.generate(n=3, condition={"topic": ["science", "love", "work"], "prompt": "Why"}, weights=str(out), steps=5, seed=0, device="cpu")
    assert [s["topic"] for s in run.samples] == ["science", "love", "work"]
    assert all(s["text"].startswith("Why") and set(s["scores"]) == {"base_perplexity", "topic_posterior"} for s in run.samples)
    assert len(run.manifest["guidance"]) == 1 and run.manifest["guidance"][0].startswith(generator.default_guidance[0].split(",")[0] + ",model=gedi")
    assert generator._scorer.cclm.config == {**TINY, "vocab": 320, "codes": len(data.TOPICS)}  # GeDi used these weights
    code, _, err = invoke_core("generate", "--plugin", "text", "--weights", base_path, "-n", "1", "--out", tmp_path / "g")
    assert_one_line_error(code, err, "core train --plugin text")


@pytest.mark.slow
def test_core_train_writes_weights_the_generator_loads_and_samples(tmp_path):
    """Both stages through `core train` (2 steps each), then generation from that file."""
    out = tmp_path / "text.safetensors"
    code, _, err = invoke_core("train", "--plugin", "text", "--steps", "2", "--out", out)
    assert code == 0, err
    checkpoint = condgen.load_checkpoint(out, generator="text")
    assert checkpoint.config["stage"] == "gedi" and checkpoint.config["topics"] == list(data.TOPICS)
    assert {k.split(".")[0] for k in checkpoint.tensors} == {"base", "cclm"}
    run = condgen.load("text").generate(n=2, condition={"topic": "science", "prompt": "Why"}, weights=str(out), steps=5, seed=0, device="cpu")
    assert all(s["text"].startswith("Why") and s["topic"] == "science" and set(s["scores"]) == {"base_perplexity", "topic_posterior"} for s in run.samples)


def test_generate_prints_the_texts_and_writes_them(tmp_path):
    code, out, err = invoke_core("generate", "--plugin", "text", "-c", "topic=science", "--prompt", "Well, then", "-n", "2", "--steps", "12", "--threads", "1", "--out", tmp_path / "run")
    assert code == 0, err
    printed = [line for line in out.splitlines() if line.startswith("[science] ")]
    assert len(printed) == 2 and all(line.startswith("[science] Well, then") for line in printed)
    written = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [f"[{w['topic']}] {w['text'].strip()}" for w in written] == printed
