"""The text generator: topic-conditioned quotations, GeDi-guided by default.

``core generate --plugin text -c topic=science [--prompt "The"]`` decodes with the
shared ``ar`` sampler; the default guidance is the core's GeDi (the CC-LM reweights the
base LM's next-token distribution). Without guidance the topic's control code drives the
CC-LM alone; without a topic the base LM samples unconditionally. Samples are dicts
(topic, prompt, text, scores) written by the ``jsonl`` writer: one JSON line per sample,
plus ``samples.jsonl`` and ``samples.txt`` with them all.
"""

from __future__ import annotations

from pathlib import Path

import condgen

from condgen_text.data import TOPICS

WEIGHTS = str(Path(__file__).parent / "weights" / "text.safetensors")
DEFAULT_GUIDANCE = "gedi=60,rho=0.7"


class TextGenerator(condgen.Generator):
    name = "text"
    description = "topic-conditioned quotations (fortunes): base LM guided by a class-conditional LM (GeDi)"
    kind = "autoregressive"
    conditions = condgen.Schema({
        "topic": condgen.ClassLabel(names=TOPICS, description="the topic of the quote (omit: any)"),
        "prompt": condgen.Text(max_length=300, description="text the quote starts with (--prompt)"),
    })
    default_sampler = "ar"
    default_steps = 60
    default_guidance = (DEFAULT_GUIDANCE,)
    formats = ("jsonl",)
    weights = WEIGHTS
    aliases = ("gedi",)
    bytes_per_sample = 1 << 22

    def session(self, **options):
        return TextSession(self, **options)

    def build_model(self, tensors, config):
        from condgen_text.model import TopicLM, TransformerLM
        from condgen_text.train import load_tokenizer

        if config.get("stage") != "gedi":
            raise ValueError("checkpoint holds no class-conditional LM (a base-LM-only checkpoint); finish training with core train --plugin text")
        if list(config["topics"]) != list(TOPICS):
            raise ValueError(f"checkpoint topics {config['topics']} differ from this plugin's {list(TOPICS)}")
        networks = {}
        for name in ("base", "cclm"):
            networks[name] = TransformerLM(**config[name])
            networks[name].load_state_dict({k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")})
        model = TopicLM(networks["base"], networks["cclm"], load_tokenizer(config["tokenizer"]), TOPICS).eval()
        self._scorer = model  # decode scores texts with the networks that wrote them
        return model

    def decode(self, x, conditions):
        from condgen_text.model import EOS_ID, score_texts

        model = getattr(self, "_scorer", None) or self.load_model()[0]
        prompts = [model.encode_prompt(c.get("prompt")) for c in conditions]
        continuations = []
        for row in x.tolist():
            continuations.append(row[: row.index(EOS_ID)] if EOS_ID in row else row)
        scores = score_texts(model, prompts, continuations)
        return [
            {
                "topic": TOPICS[c["topic"]] if c.get("topic") is not None else "any",
                "prompt": c.get("prompt") or "",
                "text": model.tokenizer.decode(p + k),
                "tokens": len(k),
                "scores": s,
            }
            for c, p, k, s in zip(conditions, prompts, continuations, scores)
        ]

    def report(self, run):
        from condgen_text.report import report

        return report(run)

    def echo(self, samples, conditions):
        """The generated texts, one paragraph each, for the terminal."""
        return "\n\n".join(f"[{sample['topic']}] {sample['text'].strip()}" for sample in samples)

    def guidance_models(self):
        """``gedi``: the CC-LM (the same TopicLM: rows with a topic code run the CC-LM)."""
        return {"gedi": _SessionModel(self)}

    def train(self, *, dataset, out, steps, seed, resume, device, progress):
        from condgen_text.train import train_base, train_cclm

        if dataset not in (None, "fortunes"):
            raise condgen.UsageError(f"text trains on fortunes only, not {dataset!r}")
        if resume:
            raise condgen.UsageError("text training cannot resume; rerun without --resume (the two stages take about 15 and 15 minutes)")
        out = Path(out)
        base_out = out.with_name(out.stem + ".base.safetensors")
        stages = {} if steps is None else {"steps": steps}
        base = train_base(base_out, seed=seed, progress=progress, **stages)
        gedi = train_cclm(base_out, out, seed=seed, progress=progress, **stages)
        return {"base": base, "gedi": gedi, "path": str(out)}


class _SessionModel:
    """The TopicLM of the weights the session loaded, looked up at call time.

    The core binds guidance before it loads the session's weights and does not pass them
    to ``guidance_models``; resolving lazily makes ``--weights`` drive the CC-LM too."""

    def __init__(self, generator: TextGenerator):
        self.generator = generator
        self.num_classes = len(TOPICS)

    def __call__(self, tokens, cond, cache=None):
        model = getattr(self.generator, "_scorer", None)
        if model is None:
            model = self.generator.load_model()[0]
        return model(tokens, cond, cache)


class TextSession(condgen.Session):
    """Checks, before anything is written, that each prompt and the tokens to generate fit
    the model's context (the schema's 300 characters can be more tokens than that)."""

    def __init__(self, generator, **options):
        super().__init__(generator, **options)
        model = generator._scorer
        context = model.base.context
        room = context - 1  # the first position holds the topic or BOS token
        for prompt in self.conditions.get("prompt", []):
            tokens = len(model.encode_prompt(prompt))
            if tokens + self.steps > room:
                raise condgen.ConditionError(
                    f"condition 'prompt': {tokens} tokens plus --steps {self.steps} exceed the model's context of {context} tokens (one holds the topic); "
                    f"use a shorter --prompt or at most --steps {max(1, room - tokens)}"
                )
