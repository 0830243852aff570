"""Training: byte-level BPE tokenizer, base LM, and GeDi's class-conditional LM.

1. The tokenizer (byte-level BPE, ``tokenizers``) and the base LM learn from every
   fortunes quote outside the held-out splits (next-token cross-entropy).
2. The CC-LM starts from the base LM (GeDi fine-tunes a pretrained LM) with one control
   code per topic and learns GeDi's hybrid loss on the topic-labelled training quotes,
   L = lambda L_g + (1 - lambda) L_d, lambda = 0.6 (Krause et al. 2021): L_g is the
   per-token cross-entropy under the quote's own code; L_d is the cross-entropy of the
   Bayes-rule class posterior
   P(c | x) = softmax_c( log P(x | c) / |x| ) (uniform prior, length-normalised, alpha = 1:
   exactly the posterior the core's GeDi guidance uses when decoding).

Batches group quotes of similar length (less padding); all randomness comes from one
``torch.Generator`` seeded by ``seed``. The checkpoint (safetensors) carries both
networks (in float16), the tokenizer's JSON and the topic names in its config.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from condgen import load_checkpoint, save_checkpoint

from condgen_text import data
from condgen_text.model import (
    BOS,
    BOS_ID,
    EOS,
    EOS_ID,
    TransformerLM,
    add_codes,
    pad_sequences,
)

GENERATOR = "text"
ARCH = {"width": 256, "depth": 4, "heads": 4, "context": 128}
VOCAB = 4096
HYBRID_LAMBDA = 0.6
CODE_LR_FACTOR = 5.0


def train_tokenizer(texts: list[str], vocab: int = VOCAB):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[BOS, EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    assert tokenizer.token_to_id(BOS) == BOS_ID and tokenizer.token_to_id(EOS) == EOS_ID
    return tokenizer


def load_tokenizer(json_text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_text)


def encode_quotes(tokenizer, quotes: list[str], context: int) -> list[list[int]]:
    """Token ids of each quote followed by <|eos|>, cut to fit after the start token."""
    return [(enc.ids + [EOS_ID])[: context - 1] for enc in tokenizer.encode_batch(quotes)]


def length_batches(lengths: list[int], tokens_per_batch: int, generator: torch.Generator) -> list[list[int]]:
    """Indices grouped by similar length, at most ``tokens_per_batch`` padded tokens each,
    in a random order (one epoch)."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    order.sort(key=lambda i: lengths[i])  # stable: ties keep the random order
    batches, current, longest = [], [], 0
    for i in order:
        longest_if = max(longest, lengths[i])
        if current and longest_if * (len(current) + 1) > tokens_per_batch:
            batches.append(current)
            current, longest_if = [], lengths[i]
        current.append(i)
        longest = longest_if
    if current:
        batches.append(current)
    return [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]


def lm_loss(model: TransformerLM, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of the quotes after the start token."""
    start = torch.full((ids.shape[0],), BOS_ID, dtype=torch.long)
    return -(model.sequence_logp(ids, start, valid).sum() / valid.sum())


def code_logp(cclm: TransformerLM, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log P(x | code c) for every code c, one batched pass: [K, B]."""
    codes, batch = cclm.codes, ids.shape[0]
    starts = cclm.vocab + torch.arange(codes).repeat_interleave(batch)
    return cclm.sequence_logp(ids.repeat(codes, 1), starts, valid.repeat(codes, 1)).reshape(codes, batch)


def gedi_losses(cclm: TransformerLM, ids: torch.Tensor, valid: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_g, L_d) of GeDi's hybrid objective for a batch of labelled quotes."""
    logp = code_logp(cclm, ids, valid)  # [K, B]
    lengths = valid.sum(1)
    own = logp.gather(0, labels[None]).squeeze(0)
    generative = -(own.sum() / lengths.sum())
    discriminative = F.cross_entropy((logp / lengths).T, labels)
    return generative, discriminative


def _schedule(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _loop(model, steps, lr, warmup, batches_of_epoch, loss_of_batch, progress, log_every=25):
    """AdamW with warmup and cosine decay over ``steps``; returns the logged losses."""
    # New control codes start with no signal; they learn CODE_LR_FACTOR times faster.
    codes = [p for n, p in model.named_parameters() if n.startswith("code_embed.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("code_embed.")]
    groups = [{"params": rest, "scale": 1.0}] + ([{"params": codes, "scale": CODE_LR_FACTOR, "weight_decay": 0.0}] if codes else [])
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    history, queue, started = [], [], time.perf_counter()
    for step in range(steps):
        if not queue:
            queue = batches_of_epoch()
        for group in optimizer.param_groups:
            group["lr"] = group["scale"] * _schedule(step, steps, lr, warmup)
        losses = loss_of_batch(queue.pop())
        total = sum(weight * value for weight, value in losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps - 1:
            record = {"step": step, **{name: round(float(value.detach()), 4) for name, (_, value) in losses.items()}, "seconds": round(time.perf_counter() - started, 1)}
            history.append(record)
        if progress:
            progress(step + 1, steps, **{name: float(value.detach()) for name, (_, value) in losses.items()})
    return history


def train_base(out: Path, *, steps: int = 1000, seed: int = 0, tokens_per_batch: int = 2048, lr: float = 1.5e-3, progress: Callable | None = None) -> dict:
    """Tokenizer + base LM on the base corpus; writes a checkpoint with codes = 0."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    quotes = data.base_corpus()
    tokenizer = train_tokenizer(quotes)
    encoded = encode_quotes(tokenizer, quotes, ARCH["context"])
    model = TransformerLM(VOCAB, **ARCH)

    def loss_of_batch(indices):
        ids, valid = pad_sequences([encoded[i] for i in indices])
        return {"loss": (1.0, lm_loss(model, ids, valid))}

    history = _loop(model, steps, lr, 50, lambda: length_batches([len(e) for e in encoded], tokens_per_batch, generator), loss_of_batch, progress)
    config = {"stage": "base", "base": model.config, "tokenizer": tokenizer.to_str(), "quotes": len(quotes), "steps": steps, "seed": seed, "history": history}
    sha = save_checkpoint(out, {f"base.{k}": v for k, v in model.state_dict().items()}, config, GENERATOR)
    return {"path": str(out), "sha256": sha, "final": history[-1]}


def train_cclm(base_checkpoint: Path, out: Path, *, steps: int = 900, seed: int = 0, quotes_per_batch: int = 12, lr: float = 1e-3, topics: tuple[str, ...] = data.TOPICS, progress: Callable | None = None) -> dict:
    """GeDi's CC-LM fine-tuned from the base LM with the hybrid loss; writes both LMs."""
    generator = torch.Generator().manual_seed(seed + 1)
    torch.manual_seed(seed + 1)
    checkpoint = load_checkpoint(base_checkpoint, generator=GENERATOR)
    base = TransformerLM(**checkpoint.config["base"])
    base.load_state_dict({k[len("base.") :]: v for k, v in checkpoint.tensors.items() if k.startswith("base.")})
    tokenizer = load_tokenizer(checkpoint.config["tokenizer"])
    cclm = add_codes(base, len(topics), generator)
    pairs = data.topic_quotes("train", topics)
    encoded = encode_quotes(tokenizer, [q for q, _ in pairs], base.context)
    labels = [label for _, label in pairs]
    tokens_per_batch = quotes_per_batch * 48  # length grouping, about this many quotes per batch

    def loss_of_batch(indices):
        ids, valid = pad_sequences([encoded[i] for i in indices])
        generative, discriminative = gedi_losses(cclm, ids, valid, torch.tensor([labels[i] for i in indices]))
        return {"L_g": (HYBRID_LAMBDA, generative), "L_d": (1 - HYBRID_LAMBDA, discriminative)}

    history = _loop(cclm, steps, lr, 30, lambda: length_batches([len(e) for e in encoded], tokens_per_batch, generator), loss_of_batch, progress)
    config = {
        **{k: v for k, v in checkpoint.config.items() if k not in ("stage", "history", "steps", "seed")},
        "stage": "gedi", "topics": list(topics), "cclm": cclm.config, "base_history": checkpoint.config.get("history", checkpoint.config.get("base_history")),  # a base file, or a shipped GeDi file retrained
        "cclm_steps": steps, "cclm_seed": seed, "cclm_history": history, "hybrid_lambda": HYBRID_LAMBDA, "topic_quotes": len(pairs),
    }
    # float16 halves the shipped file (two 4.2M-parameter LMs: 17 MB, not 34); the
    # networks load it back into float32.
    tensors = {**checkpoint.tensors, **{f"cclm.{k}": v for k, v in cclm.state_dict().items()}}
    sha = save_checkpoint(out, {k: v.half() for k, v in tensors.items()}, {**config, "stored_dtype": "float16"}, GENERATOR)
    return {"path": str(out), "sha256": sha, "final": history[-1]}
