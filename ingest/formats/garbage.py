"""Is a page's extracted text garbage? A pure function, calibrated on ../shared/data/pdfs.

A text layer can exist and still be useless: fonts without a ToUnicode map, wrong CMaps, glyphs
lost at PDF creation. Indexing it would make the page unsearchable and poison answers, so such a
page is OCR'd (or, with OCR off, left out with a warning). Written by hand: no library scores
"does this look like text a person wrote" for mixed Chinese/English pages without a language model.

The signals, each the share of the page's non-space characters unless said otherwise, and the file
of ../shared/data/pdfs where each was seen:
  - U+FFFD, private-use code points, "■" (glyphs lost: cn_reportlab_*_glyphs_lost, broken_xref_reconstruct);
  - "(cid:NN)" placeholders (what pdfminer-style extractors print for unmapped glyphs);
  - control characters standing in for spaces: a font whose codes are glyph ids shifted by 29, so
    "Think" comes out as "7KLQN" and the space as U+0003 (react_paper pages 2 and 9, non_unicode_cmap);
  - Latin-1 accented letters making up much of the Latin text: GBK bytes read as Latin-1
    (cn_gbk_mojibake_text_layer: "»ùÒòÍâÏÔ×Ó");
  - rare Han (CJK Extension A) standing in for common characters: a wrong CMap (cjk_cidfont_cmap_overflow,
    cn_invoice_broken_cmap);
  - a "script salad": letters scattered over many writing systems no page mixes (Syriac, N'Ko,
    Kannada, Myanmar... for Chinese text in pumpkin_book_nangua_shu).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rag.text import HAN_COMMON, HAN_RARE

_HAN_COMMON = re.compile(f"[{HAN_COMMON}]")
_HAN_RARE = re.compile(f"[{HAN_RARE}]")

# A page counts as garbage when the share of bad characters reaches this. Calibrated on the shared
# PDFs: garbage pages score 0.38-1.0, the worst readable page 0.09 (a LaTeX maths page whose symbols
# extract as control characters; 009-pdflatex-geotopo page 92).
GARBAGE_THRESHOLD = 0.2

_CID = re.compile(r"\(cid:\d+\)")
_BOXES = set("■□▯\ufffd")
# Scripts a zh/en (or any one-language) page legitimately mixes: the page's own script plus these.
_COMMON_SCRIPTS = {"LATIN", "CJK", "GREEK", "HIRAGANA", "KATAKANA", "HANGUL", "FULLWIDTH"}


@dataclass(frozen=True)
class TextQuality:
    score: float  # share of characters judged garbage, 0..1
    reason: str  # the strongest signal, for the ingest report ("" when clean)

    @property
    def garbage(self) -> bool:
        return self.score >= GARBAGE_THRESHOLD


def text_quality(raw: str) -> TextQuality:
    """Score the raw text of one page (before normalisation, which drops control characters)."""
    cids = _CID.findall(raw)
    text = _CID.sub("\ufffd", raw)
    chars = [c for c in text if not c.isspace()]
    n = len(chars)
    if n == 0:
        return TextQuality(0.0, "")
    signals: dict[str, float] = {}
    signals["replacement or private-use characters" if not cids else "unmapped glyphs (cid:NN)"] = sum(
        c in _BOXES or _private(c) for c in chars) / n

    controls = sum(unicodedata.category(c) == "Cc" for c in chars)
    spaces = text.count(" ")
    if controls > spaces:  # control characters where the spaces should be: a shifted font encoding
        signals["font without a Unicode map (shifted codes)"] = controls / n + _upper_share(chars) * 0.5

    latin = [c for c in chars if c.isalpha() and unicodedata.name(c, "").startswith("LATIN")]
    if len(latin) >= 20:
        accented = sum("\u00c0" <= c <= "\u00ff" for c in latin)
        signals["GBK/GB2312 bytes read as Latin-1 (mojibake)"] = accented / len(latin)

    han = sum(bool(_HAN_COMMON.match(c)) for c in chars)
    rare_han = sum(bool(_HAN_RARE.match(c)) for c in chars)
    if rare_han >= 3:
        signals["wrong CMap (rare CJK characters)"] = rare_han / (han + rare_han)

    signals["characters from many unrelated scripts (wrong CMap)"] = _script_salad(chars)

    reason, score = max(signals.items(), key=lambda kv: kv[1])
    return TextQuality(min(1.0, score), reason if score >= GARBAGE_THRESHOLD else "")


def _private(c: str) -> bool:
    o = ord(c)
    return 0xE000 <= o <= 0xF8FF or o >= 0xF0000


def _upper_share(chars: list[str]) -> float:
    letters = [c for c in chars if "A" <= c <= "Z" or "a" <= c <= "z"]
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def _script_salad(chars: list[str]) -> float:
    """Share of the non-Latin letters that fall outside the page's main script and the scripts zh/en
    pages mix in, when they are spread over three or more such scripts (one foreign script is a
    quotation, not salad). Latin letters are left out: maths and English words on a page whose
    Chinese came out as salad would dilute it."""
    counts: dict[str, int] = {}
    for c in chars:
        if c.isalpha():
            script = unicodedata.name(c, "UNKNOWN").split(" ")[0]
            if script != "LATIN":
                counts[script] = counts.get(script, 0) + 1
    letters = sum(counts.values())
    if letters < 10:
        return 0.0
    main = max(counts, key=counts.get)
    odd = {s: k for s, k in counts.items() if s != main and s not in _COMMON_SCRIPTS}
    return sum(odd.values()) / letters if len(odd) >= 3 else 0.0
