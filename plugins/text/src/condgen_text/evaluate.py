"""Metrics for ``core evaluate --plugin text`` and the quality benchmark.

- topic accuracy: an independent judge — TF-IDF (words) + logistic regression (balanced
  class weights), trained on the held-out ``judge`` and ``test`` splits, which neither
  LM saw — labels each sample; accuracy is the share of samples of a topic labelled
  with that topic, averaged over topics. The reference is the judge's accuracy on real
  held-out quotes, measured the same way by 5-fold cross-validation over those splits. For unconditioned samples the rate of topic t is
  the share labelled t, so unguided text scores 1/6 on average by construction.
- perplexity under the base LM of the generated tokens (the prompt excluded), token-
  weighted over samples, beside the same figure for real test quotes;
- distinct-1/2 (Li et al. 2016): distinct word uni/bigrams over all n-grams of the samples.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from condgen_text import data


@lru_cache(maxsize=2)
def held_out(topics: tuple[str, ...] = data.TOPICS) -> list[tuple[str, int]]:
    return data.topic_quotes("judge", topics) + data.topic_quotes("test", topics)


def make_judge():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # Unigrams and C = 1 did best on real quotes among (1-2 grams, C in 1..10, weights).
    return make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000))


@lru_cache(maxsize=2)
def judge(topics: tuple[str, ...] = data.TOPICS):
    """The judge classifier, fitted on all held-out quotes (deterministic)."""
    pairs = held_out(topics)
    return make_judge().fit([q for q, _ in pairs], [label for _, label in pairs])


def judge_reference_accuracy(topics: tuple[str, ...] = data.TOPICS) -> dict:
    """The judge's accuracy on real held-out quotes, by 5-fold cross-validation."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    pairs = held_out(topics)
    labels = np.array([label for _, label in pairs])
    predicted = cross_val_predict(make_judge(), [q for q, _ in pairs], labels, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    return _rates(predicted, list(labels), topics)


def topic_accuracy(texts: list[str], targets: list[int | None], topics: tuple[str, ...] = data.TOPICS) -> dict:
    """Per-topic and topic-averaged accuracy of the judge on ``texts`` (see module doc)."""
    predicted = judge(topics).predict(texts) if texts else np.array([], dtype=int)
    return _rates(predicted, targets, topics)


def _rates(predicted, targets, topics) -> dict:
    scores = {}
    for index, topic in enumerate(topics):
        if any(t is None for t in targets):  # unconditioned: rate of this topic among all
            scores[topic] = float(np.mean(predicted == index))
        else:
            chosen = [p for p, t in zip(predicted, targets) if t == index]
            if chosen:
                scores[topic] = float(np.mean(np.array(chosen) == index))
    scores["mean"] = float(np.mean([scores[t] for t in topics if t in scores])) if scores else math.nan
    return scores


def distinct(texts: list[str], n: int) -> float:
    grams = [tuple(words[i : i + n]) for words in (t.lower().split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def token_weighted_perplexity(samples: list[dict]) -> float:
    weighted = [(s["tokens"], math.log(s["scores"]["base_perplexity"])) for s in samples if s["scores"]["base_perplexity"] is not None]
    total = sum(n for n, _ in weighted)
    return math.exp(sum(n * lp for n, lp in weighted) / total) if total else math.nan


def reference(model, topics: tuple[str, ...] = data.TOPICS) -> dict:
    """Judge accuracy (cross-validated) and base-LM perplexity of real held-out quotes."""
    from condgen_text.model import score_texts

    texts = [q for q, _ in data.topic_quotes("test", topics)]
    accuracy = judge_reference_accuracy(topics)
    ids = [model.tokenizer.encode(q).ids[: model.base.context - 2] + [model.eos_id] for q in texts]
    scores = []
    for start in range(0, len(ids), 64):
        scores += score_texts(model, [[] for _ in ids[start : start + 64]], ids[start : start + 64])
    samples = [{"tokens": len(i), "scores": s} for i, s in zip(ids, scores)]
    return {"accuracy": accuracy, "perplexity": token_weighted_perplexity(samples), "distinct_1": distinct(texts, 1), "distinct_2": distinct(texts, 2), "quotes": len(texts)}


def summarise(samples: list[dict], conditions: list[dict]) -> dict:
    """Accuracy, perplexity and distinct-n of one method's samples."""
    texts = [s["text"] for s in samples]
    accuracy = topic_accuracy(texts, [c.get("topic") for c in conditions])
    return {"accuracy": accuracy, "perplexity": token_weighted_perplexity(samples), "distinct_1": distinct(texts, 1), "distinct_2": distinct(texts, 2), "samples": len(samples)}


def topic_metrics(generator, samples, conditions) -> dict:
    """``core evaluate`` entry: the samples' figures beside the real test quotes'."""
    model = getattr(generator, "_scorer", None) or generator.load_model()[0]
    own, real = summarise(samples, conditions), reference(model)
    scores = {f"accuracy.{k}": v for k, v in own["accuracy"].items()}
    scores.update(perplexity=own["perplexity"], distinct_1=own["distinct_1"], distinct_2=own["distinct_2"])
    scores.update({"real.accuracy.mean": real["accuracy"]["mean"], "real.perplexity": real["perplexity"], "real.distinct_1": real["distinct_1"], "real.distinct_2": real["distinct_2"]})
    return scores
