"""The language models: a small GPT-style causal transformer, used twice.

- the base LM (``TransformerLM`` with no control codes) models all quotes;
- the class-conditional LM (CC-LM, GeDi's generative discriminator) is the same network
  with one extra input token per topic — the control code — that takes the place of
  the start token, so P(x | code) is an ordinary LM likelihood (Krause et al. 2021).

``TopicLM`` puts both behind condgen's autoregressive protocol
``model(tokens, cond, cache) -> (next-token logits, cache)``: rows whose topic is given
run the CC-LM with that topic's code, rows without a topic run the base LM. The core's
GeDi guidance therefore gets the base LM by dropping the topic and the CC-LM by setting
it, and CFG contrasts the CC-LM with the base LM, with no glue of its own.
A prompt (condition ``prompt``) is encoded and placed after the start token on the
first call; rows are left-padded to a common length and padding is masked from
attention, so a sample does not depend on the other prompts in its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from condgen import UsageError
from torch import nn

BOS, EOS = "<|bos|>", "<|eos|>"
#: The tokenizer is trained with these special tokens first (condgen_text.train).
BOS_ID, EOS_ID = 0, 1


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x, past=None, mask=None):
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        if mask is None:  # training and unpadded first calls: plain causal attention
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.norm2(x)), (k, v)


class TransformerLM(nn.Module):
    """Pre-norm causal transformer with learned positions and tied input/output embeddings.

    ``codes`` extra input-only tokens (ids vocab .. vocab + codes - 1) are the control
    codes of a CC-LM; the output layer covers the ``vocab`` text tokens only.
    """

    def __init__(self, vocab: int, width: int = 256, depth: int = 4, heads: int = 4, context: int = 128, codes: int = 0):
        super().__init__()
        self.vocab, self.context, self.codes = vocab, context, codes
        self.config = {"vocab": vocab, "width": width, "depth": depth, "heads": heads, "context": context, "codes": codes}
        self.embed = nn.Embedding(vocab, width)
        # Control codes are input-only tokens with their own table (and learning rate).
        self.code_embed = nn.Embedding(codes, width) if codes else None
        self.position = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.apply(_init)

    def forward(self, tokens, positions=None, past=None, mask=None):
        """Logits [B, T, vocab] and the new key-value cache (one (k, v) per block)."""
        if positions is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        if int(positions.max()) >= self.context:
            raise UsageError(f"the text is longer than the model's context of {self.context} tokens; use fewer --steps or a shorter --prompt")
        x = self.embed(tokens.clamp(max=self.vocab - 1)) + self.position(positions)
        if self.code_embed is not None:
            is_code = tokens >= self.vocab
            if bool(is_code.any()):
                x = torch.where(is_code[..., None], self.code_embed((tokens - self.vocab).clamp(min=0)) + self.position(positions), x)
        cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[i], mask)
            cache.append(kv)
        return self.norm(x) @ self.embed.weight.T, cache

    def sequence_logp(self, tokens, start, valid):
        """Sum of log P(tokens[:, i] | start, tokens[:, :i]) over ``valid`` positions: [B].

        ``start`` [B] is the first input (the start token or a control code)."""
        inputs = torch.cat([start[:, None], tokens[:, :-1]], 1)
        logits, _ = self(inputs)
        logp = torch.log_softmax(logits.float(), -1).gather(2, tokens[..., None]).squeeze(2)
        return (logp * valid).sum(1)


def _init(module):
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def add_codes(base: TransformerLM, codes: int, generator: torch.Generator | None = None) -> TransformerLM:
    """A CC-LM initialised from the base LM (GeDi fine-tunes a pretrained LM): the same
    weights, plus control-code embeddings that start as the start token's embedding."""
    cclm = TransformerLM(**{**base.config, "codes": codes})
    state = base.state_dict()
    start = state["embed.weight"][BOS_ID]
    state["code_embed.weight"] = start + 0.02 * torch.randn(codes, start.shape[0], generator=generator)
    cclm.load_state_dict(state)
    return cclm


class _Stream:
    """Decoding state of one LM on a fixed subset of the batch's rows."""

    def __init__(self, past, valid, next_position):
        self.past, self.valid, self.next_position = past, valid, next_position


class TopicLM(nn.Module):
    """The base LM and the CC-LM behind condgen's autoregressive protocol (see module doc)."""

    kind = "autoregressive"
    bos_id, eos_id = BOS_ID, EOS_ID

    def __init__(self, base: TransformerLM, cclm: TransformerLM, tokenizer, topics: tuple[str, ...]):
        super().__init__()
        self.base, self.cclm, self.tokenizer, self.topics = base, cclm, tokenizer, tuple(topics)
        self.vocab_size = base.vocab
        self.num_classes = len(topics)
        self.sample_shape = (base.context - 1,)

    def encode_prompt(self, prompt: str | None) -> list[int]:
        return [] if not prompt else self.tokenizer.encode(prompt).ids

    def forward(self, tokens, cond, cache=None):
        topic = cond.get("topic")
        batch = tokens.shape[0]
        topic = torch.full((batch,), -1, dtype=torch.long) if topic is None else topic.to("cpu")
        if cache is None:
            cache = {"rows": {name: torch.nonzero(sel).flatten() for name, sel in (("cclm", topic >= 0), ("base", topic < 0))}}
            prompts = cond.get("prompt") or [None] * batch
            logits = torch.empty(batch, self.vocab_size, device=tokens.device)
            for name, rows in cache["rows"].items():
                if len(rows):
                    starts = [self.bos_id if name == "base" else self.vocab_size + int(topic[r]) for r in rows.tolist()]
                    sequences = [[start, *self.encode_prompt(prompts[r]), *tokens[r, 1:].tolist()] for start, r in zip(starts, rows.tolist())]
                    logits[rows], cache[name] = self._first(getattr(self, name), sequences, tokens.device)
            return logits, cache
        logits = torch.empty(batch, self.vocab_size, device=tokens.device)
        for name, rows in cache["rows"].items():
            if len(rows):
                logits[rows], cache[name] = self._next(getattr(self, name), tokens[rows.to(tokens.device)], cache[name])
        return logits, cache

    def _first(self, model, sequences, device):
        """Run whole (left-padded) sequences; the last position's logits and the cache."""
        width = max(len(s) for s in sequences)
        pads = [width - len(s) for s in sequences]
        tokens = torch.tensor([[self.eos_id] * p + s for p, s in zip(pads, sequences)], device=device)
        valid = torch.arange(width, device=device)[None, :] >= torch.tensor(pads, device=device)[:, None]
        positions = (valid.long().cumsum(1) - 1).clamp(min=0)
        mask = None if not any(pads) else _attention_mask(valid, width)
        logits, past = model(tokens, positions, None, mask)
        return logits[:, -1].float(), _Stream(past, valid, positions[:, -1] + 1)

    def _next(self, model, new, stream):
        valid = torch.cat([stream.valid, torch.ones(new.shape[0], 1, dtype=torch.bool, device=new.device)], 1)
        mask = valid[:, None, None, :]  # the new token sees every real earlier token
        logits, past = model(new, stream.next_position[:, None], stream.past, mask)
        return logits[:, -1].float(), _Stream(past, valid, stream.next_position + 1)


def _attention_mask(valid, length):
    causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    mask = causal[None] & valid[:, None, :]
    # A padding query would see no key at all (NaN); let it see itself — its output is unused.
    mask |= torch.eye(length, dtype=torch.bool, device=valid.device)[None]
    return mask[:, None]


@torch.no_grad()
def score_texts(model: TopicLM, prompts: list[list[int]], continuations: list[list[int]]) -> list[dict]:
    """Per text: perplexity of the continuation under the base LM (given the prompt), and
    the CC-LM's length-normalised Bayes-rule posterior over topics of prompt + continuation."""
    device = model.base.embed.weight.device
    context = model.base.context - 1
    sequences = [(p + c)[:context] for p, c in zip(prompts, continuations)]
    ids, valid = pad_sequences(sequences, device)
    scored = torch.zeros_like(valid)
    for row, (p, c) in enumerate(zip(prompts, continuations)):
        scored[row, min(len(p), context) : len(sequences[row])] = 1  # the continuation's tokens
    start = torch.full((len(sequences),), BOS_ID, device=device)
    base_inputs = torch.cat([start[:, None], ids[:, :-1]], 1)
    logits, _ = model.base(base_inputs)
    logp = torch.log_softmax(logits.float(), -1).gather(2, ids[..., None]).squeeze(2)
    nll = -(logp * scored).sum(1) / scored.sum(1).clamp(min=1)
    codes = model.num_classes
    starts = model.vocab_size + torch.arange(codes, device=device).repeat_interleave(len(sequences))
    per_code = model.cclm.sequence_logp(ids.repeat(codes, 1), starts, valid.repeat(codes, 1)).reshape(codes, -1)
    posterior = torch.softmax(per_code / valid.sum(1).clamp(min=1), 0).T
    return [
        {"base_perplexity": round(float(torch.exp(n)), 3) if s.sum() else None, "topic_posterior": {t: round(float(p), 4) for t, p in zip(model.topics, row)}}
        for n, s, row in zip(nll, scored, posterior)
    ]


def pad_sequences(sequences: list[list[int]], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] ids padded with <|eos|> and the [B, T] float mask of real positions."""
    width = max(1, max(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), EOS_ID, dtype=torch.long, device=device)
    valid = torch.zeros(len(sequences), width, device=device)
    for row, s in enumerate(sequences):
        if s:
            ids[row, : len(s)] = torch.tensor(s, device=device)
            valid[row, : len(s)] = 1
    return ids, valid
