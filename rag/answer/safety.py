"""Content safety: a pluggable filter on questions (before retrieval) and answers (after generation).

One interface (SafetyFilter.check(text) -> Verdict), chosen by Settings.safety:
  "wordlist"  phrases per category from a file (default: rag/data/safety_words.txt, zh + en; your
              own file through Settings.safety_words), English matched as whole words ignoring case,
              Chinese anywhere (no word boundaries in Chinese);
  "off"       allows everything.
A flagged question is refused politely without retrieval or a model call; a flagged answer is
replaced by the same refusal. When streaming, the pieces already shown cannot be taken back: the
final Answer (which the UI and API treat as authoritative) carries the refusal instead.

Written by hand: the Python moderation libraries found either call a hosted API or ship English-only
models; a word list is transparent, offline and easy for a deployer to extend.
"""
from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.text import HAN_COMMON

DEFAULT_WORDS = Path(__file__).parent.parent / "data" / "safety_words.txt"

REFUSAL = {
    "zh": "抱歉，这个问题涉及不安全的内容（{category}），我不能提供帮助。如有需要，请向专业人士或相关机构求助。",
    "en": "Sorry, I can't help with this: it touches on unsafe content ({category}). If you need support, "
          "please reach out to a qualified professional or the relevant authorities.",
}
CATEGORY_ZH = {"weapons": "武器", "violence": "暴力", "self-harm": "自我伤害", "drugs": "毒品", "crime": "违法犯罪",
               "sexual content involving minors": "涉及未成年人的色情内容"}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str = ""  # which category matched
    term: str = ""  # the phrase that matched (for logs; not shown to the user)


class SafetyFilter(ABC):
    name: str

    @abstractmethod
    def check(self, text: str) -> Verdict: ...


class AllowAll(SafetyFilter):
    name = "off"

    def check(self, text: str) -> Verdict:
        return Verdict(True)


class WordListFilter(SafetyFilter):
    name = "wordlist"

    def __init__(self, terms: dict[str, list[str]], source: str = "") -> None:
        self.source = source
        self._patterns: list[tuple[re.Pattern, str, str]] = []
        for category, phrases in terms.items():
            for phrase in phrases:
                self._patterns.append((_pattern(phrase), category, phrase))

    @classmethod
    def from_file(cls, path: str | Path) -> "WordListFilter":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ValueError(f"safety word list {path}: {e.strerror or e}") from e
        terms: dict[str, list[str]] = {}
        category = "unsafe"
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                category = line[1:-1].strip() or "unsafe"
                continue
            terms.setdefault(category, []).append(line)
        if not terms:
            raise ValueError(f"safety word list {path}: no phrases found")
        return cls(terms, str(path))

    def check(self, text: str) -> Verdict:
        flat = _normalise(text)
        for pattern, category, phrase in self._patterns:
            if pattern.search(flat):
                return Verdict(False, category, phrase)
        return Verdict(True)


def _normalise(text: str) -> str:
    """Full-width to ASCII, case folded, runs of spaces (and spaces inside Chinese) collapsed, so
    "How  to MAKE a bomb" and "制 作 炸 弹" match their phrases."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(rf"(?<=[{HAN_COMMON}])\s+(?=[{HAN_COMMON}])", "", text)
    return re.sub(r"\s+", " ", text)


def _pattern(phrase: str) -> re.Pattern:
    phrase = _normalise(phrase).strip()
    body = re.escape(phrase).replace(r"\ ", r"\s+")
    if re.search(r"[a-z0-9]", phrase[:1]):
        body = r"\b" + body
    if re.search(r"[a-z0-9]", phrase[-1:]):
        body += r"\b"
    return re.compile(body)


@lru_cache(maxsize=8)
def make_safety_filter(kind: str = "wordlist", words: str = "") -> SafetyFilter:
    """From Settings.safety and Settings.safety_words (cached: the chain is built per question)."""
    if kind == "off":
        return AllowAll()
    if kind == "wordlist":
        return WordListFilter.from_file(words or DEFAULT_WORDS)
    raise ValueError(f"unknown safety filter {kind!r}: use 'wordlist' or 'off'")


def refusal(language: str, verdict: Verdict) -> str:
    category = CATEGORY_ZH.get(verdict.category, verdict.category) if language == "zh" else verdict.category
    return REFUSAL["zh" if language == "zh" else "en"].format(category=category)
