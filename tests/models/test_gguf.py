"""The shipped GGUF model read through its converted folder is the model read from the GGUF
file: same tensors, tokenizer, chat template, generation config and greedy tokens."""

import threading

import pytest
import torch

from scoder.models import gguf
from scoder.models.registry import resolve


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCODER_MODEL_CACHE", str(cache))
        resolved = resolve("smollm2")
        path, kwargs = gguf.loadable(resolved)
    return resolved, path, kwargs, cache


def test_the_converted_folder_holds_what_the_gguf_file_gives(converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved, path, kwargs, cache = converted
    assert kwargs == {} and path.startswith(str(cache)) and gguf._complete(gguf.Path(path))
    assert [p.name for p in cache.iterdir() if ".partial-" in p.name] == []  # written beside, then renamed
    direct = {"gguf_file": resolved.gguf_file}
    tok_gguf = AutoTokenizer.from_pretrained(resolved.path, **direct)
    tok_folder = AutoTokenizer.from_pretrained(path)
    model_gguf = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32, **direct).eval()
    model_folder = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    a, b = model_gguf.state_dict(), model_folder.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert model_gguf.generation_config.to_dict() == model_folder.generation_config.to_dict()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def f(x):\n    return x  # ünï 中文"}]
    assert tok_gguf.chat_template == tok_folder.chat_template
    for how in ({"add_generation_prompt": True}, {"continue_final_message": True}):
        assert tok_gguf.apply_chat_template(messages, tokenize=False, **how) == \
            tok_folder.apply_chat_template(messages, tokenize=False, **how)
    text = (gguf.Path(__file__).parents[2] / "src/scoder/bootstrap/prompts/synthesis.txt").read_text()
    assert tok_gguf(text)["input_ids"] == tok_folder(text)["input_ids"]
    assert tok_gguf.all_special_tokens == tok_folder.all_special_tokens and len(tok_gguf) == len(tok_folder)
    batch = tok_gguf([text[:600], text[600:900]], return_tensors="pt", padding=True)
    with torch.inference_mode():
        greedy = [m.generate(**batch, max_new_tokens=12, do_sample=False) for m in (model_gguf, model_folder)]
    assert torch.equal(*greedy)


def test_a_second_load_reads_the_folder_and_bfloat16_matches_the_gguf_file_in_bfloat16(converted, monkeypatch):
    from transformers import AutoModelForCausalLM

    resolved, path, _, cache = converted
    monkeypatch.setenv("SCODER_MODEL_CACHE", str(cache))
    monkeypatch.setattr(gguf, "convert", lambda *a: pytest.fail("converted twice"))
    assert gguf.loadable(resolved) == (path, {}) and gguf.readable(resolved) == (path, {})
    direct = AutoModelForCausalLM.from_pretrained(resolved.path, gguf_file=resolved.gguf_file, dtype=torch.bfloat16)
    folder = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    a, b = direct.state_dict(), folder.state_dict()
    assert all(t.dtype == torch.bfloat16 for t in b.values()) and all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_folder_is_converted_again(converted, monkeypatch, tmp_path):
    resolved, path, _, cache = converted
    copy = tmp_path / "cache"
    folder = copy / gguf.Path(path).name
    folder.mkdir(parents=True)
    for item in gguf.Path(path).iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").write_text("{}")  # cut short, the marker still there
    monkeypatch.setenv("SCODER_MODEL_CACHE", str(copy))
    calls = []
    monkeypatch.setattr(gguf, "convert", lambda source, target: calls.append(target) or target.mkdir())
    gguf.loadable(resolved)
    assert calls == [folder]


def test_a_cache_that_cannot_be_written_loads_the_gguf_file_directly(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SCODER_MODEL_CACHE", str(blocker / "models"))
    resolved = resolve("smollm2")
    assert gguf.loadable(resolved) == (resolved.path, {"gguf_file": resolved.gguf_file})
    assert gguf.readable(resolved) == (resolved.path, {"gguf_file": resolved.gguf_file})


def test_an_unfinished_folder_is_converted_again_and_concurrent_first_loads_convert_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SCODER_MODEL_CACHE", str(tmp_path))
    resolved = resolve("smollm2")
    folder = gguf.converted_folder(gguf.Path(resolved.path) / resolved.gguf_file)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"cut short")  # a crash before the marker
    stale = folder.with_name(f"{folder.name}.partial-999999")  # a crash during the conversion
    stale.mkdir()
    calls = []

    def slow_convert(source, target):  # stands in for the 30-second conversion
        calls.append(target)
        threading.Event().wait(0.5)
        target.mkdir()
        (target / gguf.COMPLETE).write_text('{"files": {}}')

    monkeypatch.setattr(gguf, "convert", slow_convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(gguf.loadable(resolved))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [folder] and results == [(str(folder), {})] * 3
    assert not (folder / "model.safetensors").exists() and not stale.exists()  # unfinished content is gone


def test_models_that_are_not_gguf_load_as_they_are(tmp_path):
    plain = gguf.ResolvedModel("x", str(tmp_path))
    assert gguf.loadable(plain) == (str(tmp_path), {})


def test_training_without_a_writable_cache_gets_the_plain_model_rebuilt_from_the_file(tmp_path, monkeypatch):
    from scoder.training.sft import load_trainable_model

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SCODER_MODEL_CACHE", str(blocker / "models"))
    model, tokenizer = load_trainable_model("smollm2")
    assert not hasattr(model.config, "quantization_config") and tokenizer.pad_token is not None
    assert all(p.dtype == torch.float32 for p in model.parameters())
