"""The answerability probe: P(answerable | question, passages) from a generator's own hidden state (issue 31).

A model artifact, like its weights: trained offline for one model by scripts/train_probe.py (`make
train-probe`, docs/probe.md) and shipped as rag/data/answerability_probe.json (a few KB). The generator reads
which states it must keep (`layers`); rag/answer/refuse.py decides with the score. States are named
"<position>/<layer>": position `prompt_last` (the last prompt token), `first_generated`, or `draft_last` (the
last token of the answer, middle layers only: known once the draft is written), layer `final` (the final layer,
free) or `l_out-N` (the output of layer N, kept through llama.cpp's eval callback).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

BUNDLED_PROBE = Path(__file__).resolve().parents[1] / "data" / "answerability_probe.json"

#: the rules that judge a draft (rag/answer/refuse.py; their names in a probe's `rules`). The support check, the
#: model's own refusal (neither can be cited), the prompt-leak guard and content safety always apply
GATE, OVERLAP, NUMBERS, EVIDENCE = "gate", "question overlap", "numbers", "evidence"
ALL_RULES = frozenset({GATE, OVERLAP, NUMBERS, EVIDENCE})


@dataclass(frozen=True)
class Probe:
    """P(answerable | question, passages) = sigmoid(w . h + b), h = the hidden state `feature` of `model`."""

    model: str  # the generator name it was trained for: another model's states mean nothing to it
    feature: str  # the states it reads joined by "+", e.g. "prompt_last/l_out-16+first_generated/l_out-16"
    weights: np.ndarray
    bias: float
    refuse_below: float
    hedge_below: float
    rules: frozenset[str]  # the rules kept beside the score (measured: docs/probe.md)
    #: language -> the probe that scores questions in it: its own operating point (chosen on its dev items alone),
    #: and its own weights where they separate its dev items better (docs/probe_<lang>.md); the model and rules shared
    languages: Mapping[str, "Probe"] = field(default_factory=dict)

    def for_language(self, language: str) -> "Probe":
        """The probe that scores a question in `language`: its own where there is one, else this (joint) one."""
        return self.languages.get(language, self) if language else replace(self, languages={})

    def score(self, hidden: dict) -> float | None:
        """The probability, or None when the generator did not give the states the probe reads."""
        parts = [hidden.get(name) for name in self.feature.split("+")]
        if any(p is None for p in parts):
            return None
        h = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
        if h.shape != self.weights.shape:
            return None
        return float(1.0 / (1.0 + np.exp(-(float(h @ self.weights) + self.bias))))


def operating_rule(point: Mapping) -> str:
    """How an operating point of a probe file (the joint one or a language's part) was chosen, in words, from the
    limits it records: the refusal limit, and the hedge limit (a share of unanswerable items stated unhedged, or,
    for a point chosen before 2026-12-07, a precision)."""
    refuse = (f"refuse below the score that keeps at most {point.get('max_false_refusals', 0.1):.0%} of the "
              "answerable dev items out")
    if "max_unhedged_unanswerable" in point:
        return (refuse + f", state without a hedge from the score with at most {point['max_unhedged_unanswerable']:.0%} "
                "of the unanswerable dev items at or above it")
    return refuse + (f", state without a hedge from the score above which {point.get('hedge_precision', 0.9):.0%} of "
                     "the dev items are answerable")


@lru_cache(maxsize=8)
def load_probe(path: str = "") -> Probe | None:
    """The probe in `path` ('' = the bundled one, 'off' = none); None when there is none."""
    if path == "off":
        return None
    file = Path(path) if path else BUNDLED_PROBE
    if not file.exists():
        return None
    data = json.loads(file.read_text(encoding="utf-8"))
    rules = frozenset(data.get("rules", ALL_RULES))
    # a language's part holds its own operating point, and its own weights where they won (else the joint ones)
    joint = {k: data[k] for k in ("feature", "weights_f16_b64", "bias")}
    own = {lang: _probe(data["model"], {**joint, **part}, rules) for lang, part in data.get("languages", {}).items()}
    return _probe(data["model"], data, rules, own)


def _probe(model: str, data: dict, rules: frozenset[str], languages: Mapping[str, Probe] | None = None) -> Probe:
    weights = np.frombuffer(base64.b64decode(data["weights_f16_b64"]), dtype="<f2").astype(np.float32)
    return Probe(model=model, feature=data["feature"], weights=weights, bias=float(data["bias"]),
                 refuse_below=float(data["refuse_below"]), hedge_below=float(data["hedge_below"]), rules=rules,
                 languages=languages or {})


def layers_of(probe: Probe | None) -> tuple[int, ...]:
    """The transformer layers whose outputs the probe reads (none for the final layer)."""
    if probe is None:
        return ()
    names = [name for p in (probe, *probe.languages.values()) for name in p.feature.split("+")]
    return tuple(sorted({int(name.split("l_out-")[1]) for name in names if "/l_out-" in name}))
