"""The continuous-batching decoder against model.generate (the reference path)."""

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from scoder.core.cache import ResponseCache
from scoder.models.llm import LLMConfig, SamplingParams, load_llm
from scoder.models.llm.decoding import Decoder, PrefixCache, Request, common_prefix_length

EOS, PAD = 2, 2


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=EOS,
                         pad_token_id=PAD, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    # make the end-of-sequence token likely after some tokens so rows end at different steps
    with torch.no_grad():
        model.lm_head.weight[EOS] *= 0.0
        model.model.embed_tokens.weight[EOS] += 0.5
    return model


def reference(model, prompts, max_new_tokens, eos=EOS, pad=PAD):
    """model.generate one prompt at a time: tokens up to and including the first `eos`."""
    out = []
    for ids in prompts:
        with torch.inference_mode():
            row = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, eos_token_id=eos)[0, len(ids):]
        tokens = row.tolist()
        out.append(tokens[: tokens.index(eos) + 1] if eos in tokens else tokens)
    return out


def prompts_with_shared_prefix(count, prefix_len=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    prefix = torch.randint(3, 64, (prefix_len,), generator=g).tolist()
    return [prefix + torch.randint(3, 64, (int(torch.randint(1, 30, (1,), generator=g)),), generator=g).tolist()
            for _ in range(count)]


@pytest.mark.parametrize("max_rows", [1, 3, 8])
def test_greedy_equals_generate_one_by_one(tiny, max_rows):
    prompts = prompts_with_shared_prefix(7)
    expected = reference(tiny, prompts, 20)
    decoder = Decoder(tiny, EOS, PAD, max_rows=max_rows, min_prefix_tokens=8)
    with torch.inference_mode():
        rows = decoder.run([Request(ids=p, n=1, seed=0) for p in prompts], 20)
    assert [r[0].tokens for r in rows] == expected
    assert [r[0].reason for r in rows] == ["stop" if t[-1] == EOS else "length" for t in expected]
    # the shared prefix was computed once, not once per prompt
    assert decoder.stats.prefill_tokens == sum(len(p) for p in prompts) - 6 * common_prefix_length(prompts)


def test_rows_end_at_different_steps_and_are_replaced(tiny):
    prompts = prompts_with_shared_prefix(9, seed=3)
    expected = reference(tiny, prompts, 30)
    assert len({len(t) for t in expected}) > 1, "the fixture must make rows end at different lengths"
    decoder = Decoder(tiny, EOS, PAD, max_rows=3)
    with torch.inference_mode():
        rows = decoder.run([Request(ids=p, n=1, seed=0) for p in prompts], 30)
    assert [r[0].tokens for r in rows] == expected
    assert decoder.stats.admissions > 3  # waiting prompts joined while others were decoding


def test_prefix_is_reused_across_calls_and_cleared_with_the_weights(tiny):
    cache = PrefixCache()
    first, second = prompts_with_shared_prefix(4, seed=5), prompts_with_shared_prefix(4, seed=5)[:2]
    decoder = Decoder(tiny, EOS, PAD, max_rows=4, prefix_cache=cache, min_prefix_tokens=8)
    with torch.inference_mode():
        decoder.run([Request(ids=p, n=1, seed=0) for p in first], 5)
        before = decoder.stats.prefill_tokens
        rows = decoder.run([Request(ids=p, n=1, seed=0) for p in second], 5)
    assert decoder.stats.prefill_tokens - before == sum(len(p) for p in second) - 2 * common_prefix_length(first)
    assert [r[0].tokens for r in rows] == reference(tiny, second, 5)
    cache.clear()
    assert cache.longest_shared(second) is None


def test_n_samples_share_one_prefill_and_are_seeded_per_row(tiny):
    prompts = prompts_with_shared_prefix(3, seed=7)
    with torch.inference_mode():
        greedy = Decoder(tiny, EOS, PAD, max_rows=6).run([Request(ids=p, n=2, seed=i) for i, p in enumerate(prompts)], 10)
        assert all(r[0].tokens == r[1].tokens for r in greedy)
        decoder = Decoder(tiny, EOS, PAD, max_rows=6)
        sampled = decoder.run([Request(ids=p, n=2, seed=i) for i, p in enumerate(prompts)], 10, temperature=1.5, top_p=0.9)
        # n=2 prefilled once per prompt, the shared prefix once in all
        assert decoder.stats.prefill_tokens == sum(len(p) for p in prompts) - 2 * common_prefix_length(prompts)
        # a row's sample does not depend on the rows it shared the batch with
        alone = Decoder(tiny, EOS, PAD, max_rows=1).run([Request(ids=prompts[2], n=2, seed=2)], 10, temperature=1.5, top_p=0.9)
    assert [r.tokens for r in alone[0]] == [r.tokens for r in sampled[2]]
    assert any(r[0].tokens != r[1].tokens for r in sampled)


def test_stop_check_and_zero_tokens(tiny):
    prompts = prompts_with_shared_prefix(2, seed=9)
    expected = reference(tiny, prompts, 12)
    with torch.inference_mode():
        rows = Decoder(tiny, EOS, PAD, max_rows=2, stop_check=lambda tokens: len(tokens) >= 3).run(
            [Request(ids=p, n=1, seed=0) for p in prompts], 12)
        empty = Decoder(tiny, EOS, PAD, max_rows=2).run([Request(ids=p, n=1, seed=0) for p in prompts], 0)
    assert [r[0].tokens for r in rows] == [t[:3] for t in expected]
    assert all(r[0].reason == "stop" for r in rows if len(r[0].tokens) == 3)
    assert [r[0].tokens for r in empty] == [[], []] and all(r[0].reason == "length" for r in empty)


def test_backend_continuous_equals_generate_with_the_shipped_model(tmp_path):
    prompts = [[{"role": "user", "content": f"Write a Python function that returns {i} plus a number."}] for i in range(5)]
    params = SamplingParams(max_tokens=12, stop=["\n\n"])
    out = {}
    # max_rows 5: rows of all three batches of 2 decoded together, outputs unchanged
    for decoder, max_rows in (("generate", 0), ("continuous", 0), ("continuous", 5)):
        label = f"{decoder}-{max_rows}"
        llm = load_llm(LLMConfig(model="smollm2", batch_size=2, decoder=decoder, max_rows=max_rows),
                       ResponseCache(tmp_path / f"{label}.sqlite"))
        out[label] = llm.generate(prompts, params)
        out.setdefault(decoder, out[label])
        again = llm.generate(prompts, params)
        assert all(c.cached for c in again) and [c.texts for c in again] == [c.texts for c in out[label]]
    assert [c.texts for c in out["continuous-5"]] == [c.texts for c in out["generate"]]
    assert [c.texts for c in out["continuous"]] == [c.texts for c in out["generate"]]
    assert [c.prompt_tokens for c in out["continuous"]] == [c.prompt_tokens for c in out["generate"]]
    assert [c.finish_reasons for c in out["continuous"]] == [c.finish_reasons for c in out["generate"]]


def test_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="decoder must be"):
        load_llm(LLMConfig(model="smollm2", decoder="fast"), None)


def test_shared_prefix_rounds_as_inside_the_prompt_with_the_shipped_model():
    """The scoring template's ~600-token shared prefix: its key/values, cut from a whole
    prompt's pass, equal bit for bit those each prompt computes alone; a prefix computed in a
    pass of its own rounds differently on CPU (its greedy texts drifted on 10 of 12 prompts)."""
    import gzip
    import json
    from pathlib import Path

    from scoder.bootstrap.prompts import scoring_prompt

    llm = load_llm(LLMConfig(model="smollm2", decoder="continuous"), None)
    model, tokenizer = llm.model, llm.tokenizer
    teacher = Path(__file__).resolve().parents[3] / "data/teacher/evol-codealpaca-python.jsonl.gz"
    with gzip.open(teacher, "rt") as handle:
        records = [json.loads(line) for _, line in zip(range(3), handle)]
    prompts = [tokenizer(llm.chat_text([{"role": "user", "content": scoring_prompt(r["problem"], r["solution"])}]),
                         add_special_tokens=False)["input_ids"] for r in records]
    shared = common_prefix_length(prompts)
    assert shared > 500
    decoder = Decoder(model, tokenizer.eos_token_id, tokenizer.pad_token_id, max_rows=3)
    with torch.inference_mode():
        rows = decoder.run([Request(ids=p, n=1, seed=0) for p in prompts], 6)
        (key, layers), = decoder.prefix_cache.entries.items()
        assert len(key) == shared
        for ids in prompts:
            cache = __import__("transformers").DynamicCache()
            model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True, logits_to_keep=1)
            assert all(torch.equal(layer.keys[:, :, :shared], k) and torch.equal(layer.values[:, :, :shared], v)
                       for layer, (k, v) in zip(cache.layers, layers))
    assert decoder.stats.prefill_tokens == shared + sum(len(p) - shared for p in prompts)
    assert [r[0].tokens for r in rows] == reference(model, prompts, 6, tokenizer.eos_token_id, tokenizer.pad_token_id)


def test_prompts_joining_rows_already_decoding_keep_their_texts_with_the_shipped_model():
    """Rows that end at different steps make room for waiting prompts mid-run; the rows still
    decoding must not change. Until 2026-12 an admission recorded the waiting rows' pending
    token a second time ('has_closeclose__elementselements' on HumanEval prompts); the tiny
    model repeats one token, which hid the doubling, so this runs the real model."""
    from scoder.evaluation.benchmarks import EvaluateConfig, chat_prompts

    llm = load_llm(LLMConfig(model="smollm2"), None)
    model, tokenizer = llm.model, llm.tokenizer
    problems = [{"prompt": f"def {name}(x):\n    \"\"\"{doc}\"\"\"\n"} for name, doc in
                (("double", "Return twice x."), ("is_even", "Whether x is even."), ("reverse", "Reverse the string x."),
                 ("count_vowels", "Count the vowels in the string x."), ("square", "Return x squared."),
                 ("first_word", "The first word of the sentence x."))]
    prompts = [tokenizer(llm.chat_text(m), add_special_tokens=False)["input_ids"]
               for m in chat_prompts(problems, EvaluateConfig())]
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    expected = reference(model, prompts, 24, tokenizer.eos_token_id, tokenizer.pad_token_id)
    # rows end at their first newline after a few tokens, so they end at different steps
    ends = [next((i + 1 for i, t in enumerate(tokens) if t == newline and i >= 3), len(tokens)) for tokens in expected]
    expected = [tokens[:end] for tokens, end in zip(expected, ends)]
    assert len(set(ends)) > 1 and all(len(set(t)) > 2 for t in expected)
    decoder = Decoder(model, tokenizer.eos_token_id, tokenizer.pad_token_id, max_rows=2, lookahead=1,
                      stop_check=lambda tokens: len(tokens) >= 4 and tokens[-1] == newline)
    with torch.inference_mode():
        rows = decoder.run([Request(ids=p, n=1, seed=0) for p in prompts], 24)
    assert decoder.stats.admissions >= 4  # most prompts joined a row that was still decoding
    assert [r[0].tokens for r in rows] == expected


# A weight-free model whose next token depends on every attended token and its position, so a
# doubled or lost token, or a misaligned mask / position / cache row, changes what follows.
V, CONTEXT_EOS = 97, 2


def context_next_token(context):  # depends on every token and its place: a doubled or lost token changes all that follows
    h = (sum(t * (i + 7) for i, t in enumerate(context)) * 31 + len(context)) % V
    return CONTEXT_EOS if h % 5 == 0 else (h if h > CONTEXT_EOS else 5)


class ContextModel:
    """Writes token ids as keys and positions as values; the next token is read back from the
    attended cache, so a misaligned mask, position or cache row shows as well."""

    def __call__(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, **_):
        b, t = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(past_key_values.get_seq_length(), past_key_values.get_seq_length() + t).expand(b, t)
        keys, values = past_key_values.update(input_ids.float()[:, None, :, None], position_ids.float()[:, None, :, None], 0)
        mask = torch.ones(keys.shape[0], keys.shape[2], dtype=torch.long) if attention_mask is None else attention_mask
        assert mask.shape == keys.shape[::2][:2]
        logits = torch.zeros(b, 1, V)
        for i in range(b):
            seen = mask[i].bool()
            assert values[i, 0, seen, 0].long().tolist() == list(range(int(seen.sum())))
            logits[i, 0, context_next_token(keys[i, 0, seen, 0].long().tolist())] = 1.0
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


def context_alone(prompt, max_new):
    context, out = list(prompt), []
    while len(out) < max_new and (not out or out[-1] != CONTEXT_EOS):
        out.append(context_next_token(context))
        context.append(out[-1])
    return out


@pytest.mark.parametrize("max_new", [1, 2, 9])
def test_rows_joining_rows_already_decoding_keep_every_token_once(max_new):
    g = torch.Generator().manual_seed(0)
    prefix = torch.randint(3, V, (6,), generator=g).tolist()
    prompts = [prefix + torch.randint(3, V, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist()
               for _ in range(7)]
    requests = [Request(ids=p, n=1 + i % 3, seed=0) for i, p in enumerate(prompts)]
    decoder = Decoder(ContextModel(), CONTEXT_EOS, 0, max_rows=3, lookahead=1, min_prefix_tokens=4)
    rows = decoder.run(requests, max_new)
    assert [[r.tokens for r in rs] for rs in rows] == [[context_alone(p, max_new)] * r.n for p, r in zip(prompts, requests)]
    if max_new > 1:
        assert decoder.stats.admissions > 3
