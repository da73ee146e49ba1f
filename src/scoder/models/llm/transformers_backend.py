"""transformers backend: hub names, local folders or GGUF files; batched, left-padded."""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch

from scoder.core.cache import ResponseCache, folder_digest
from scoder.models.gguf import loadable
from scoder.models.precision import resolve_precision, torch_dtype
from scoder.models.registry import resolve
from scoder.models.llm.base import (Completion, LLMConfig, Messages, SamplingParams, cut_at_stop, fill_choices_key,
                                    generate_in_batches, is_prefilled)
from scoder.models.llm.decoding import Decoder, PrefixCache, Request

log = logging.getLogger(__name__)


class TransformersLLM:
    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.cache = cache
        # tokens actually computed by this process (cache hits excluded), for the cost ledger
        self.usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        if config.threads:
            torch.set_num_threads(config.threads)
        # the model runs where it is loaded: on the CPU (no device_map is passed)
        self.precision = resolve_precision(config.precision, "cpu")
        resolved = resolve(config.model)
        log.info("loading %s with transformers (%s) in %s", config.model, resolved.gguf_file or resolved.path, self.precision)
        path, kwargs = loadable(resolved)  # a GGUF file is read from its converted folder
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(self.precision), **kwargs)
        if config.adapter:
            from peft import PeftModel

            # PEFT upcasts adapter weights to fp32 by default; keep the whole model in one dtype
            model = PeftModel.from_pretrained(model, config.adapter, autocast_adapter_dtype=False)
        self.model = model.eval()
        # what determines outputs besides the prompt: the weights (and adapter weights, which
        # change between bootstrap rounds under the same folder name)
        self.identity = {
            "backend": "transformers",
            "model": resolved.path,
            "gguf_file": resolved.gguf_file,
            "adapter_sha256": folder_digest(config.adapter) if config.adapter else None,
            "max_input_tokens": config.max_input_tokens,
        }
        if self.precision != "fp32":  # fp32 was the only precision before: its cache keys stay as they were
            self.identity["precision"] = self.precision
        if config.decoder not in ("continuous", "generate"):
            raise ValueError(f"LLMConfig.decoder must be 'continuous' or 'generate', not {config.decoder!r}")
        if config.decoder == "continuous":
            # its samples come from per-row generators, so they differ from model.generate's;
            # "-2": answers cached by "-1" carry a doubled token after each mid-run admission
            self.identity["decoder"] = "continuous-2"
        # key/values of shared prompt prefixes, valid until the weights change (activate_adapter)
        self.prefix_cache = PrefixCache()
        self.decode_stats = None

    def activate_adapter(self, folder: str, name: str, keep_others: bool = False) -> None:
        """Make the LoRA adapter in `folder` the active one, loading it under `name` on first
        use; without `keep_others` every other adapter is unloaded (one resident at a time).
        The cache identity follows the active adapter, so one adapter's cached answers never
        serve another."""
        from peft import PeftModel

        if not isinstance(self.model, PeftModel):
            self.model = PeftModel.from_pretrained(self.model, folder, adapter_name=name, autocast_adapter_dtype=False).eval()
        elif name not in self.model.peft_config:
            self.model.load_adapter(folder, adapter_name=name, autocast_adapter_dtype=False)
        self.model.set_adapter(name)
        self.prefix_cache.clear()
        if not keep_others:
            for other in [n for n in self.model.peft_config if n != name]:
                self.model.delete_adapter(other)
        digests = self.__dict__.setdefault("_adapter_digests", {})
        if folder not in digests:
            digests[folder] = folder_digest(folder)
        self.identity["adapter_sha256"] = digests[folder]

    def chat_text(self, messages: Messages) -> str:
        """The prompt text of a conversation; a final assistant message is continued."""
        if is_prefilled(messages):
            return self.tokenizer.apply_chat_template(list(messages), continue_final_message=True, tokenize=False)
        return self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)

    def _encode(self, prompts: Sequence[Messages]) -> dict[str, torch.Tensor]:
        texts = [self.chat_text(m) for m in prompts]
        return self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.config.max_input_tokens,
            add_special_tokens=False,
        )

    @torch.inference_mode()
    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        token_ids = []
        for token in tokens:
            ids = self.tokenizer.encode(token, add_special_tokens=False)
            if not ids:
                raise ValueError(f"option {token!r} encodes to no token")
            token_ids.append(ids[0])
        rows: list[list[float]] = []
        size = max(1, self.config.batch_size)
        for start in range(0, len(prompts), size):
            batch = self._encode(prompts[start : start + size])
            self.usage["calls"] += len(batch["input_ids"])
            self.usage["prompt_tokens"] += int(batch["attention_mask"].sum())
            logits = self.model(**batch).logits[:, -1, :]  # left padding: last column is real
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, token_ids]
            rows.extend(logprobs.tolist())
        return rows

    def response_nll(self, prompts: Sequence[str], texts: Sequence[str], max_length: int) -> list[float]:
        """Mean NLL per token of each text's part after its prompt (plain text, no chat template)."""
        from scoder.models.lm_loss import response_nll

        return response_nll(self.model, self.tokenizer, list(prompts), list(texts), max_length)

    @torch.inference_mode()
    def fill_choices(self, prompts: Sequence[Messages], parts: Sequence[str], choices: Sequence[str]) -> list[list[list[float]]]:
        """Teacher-forced template filling. The assistant turn is `parts[0]`, then the most
        likely of `choices` (each must be one token), then `parts[1]`, and so on: for every
        prompt, the probability of each choice at each of the len(parts) slots, renormalised
        over the choices. This is what greedy decoding would write into a fixed answer
        template, with the full distribution kept; one prompt pass plus short incremental
        steps on the key-value cache."""
        choice_ids = []
        for choice in choices:
            ids = self.tokenizer.encode(choice, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f"choice {choice!r} is {len(ids)} tokens for this tokenizer; fill_choices needs one")
            choice_ids.append(ids[0])
        rows: list[list[list[float]]] = []
        for messages in prompts:
            key = fill_choices_key(self.identity, messages, parts, choices)
            if self.cache is not None and (hit := self.cache.get(key)) is not None:
                rows.append(hit)
                continue
            ids = self.tokenizer(self.chat_text(messages) + parts[0], return_tensors="pt", truncation=True,
                                 max_length=self.config.max_input_tokens, add_special_tokens=False)["input_ids"]
            self.usage["calls"] += 1
            self.usage["prompt_tokens"] += int(ids.shape[1])
            output = self.model(input_ids=ids, use_cache=True)
            slots: list[list[float]] = []
            for index in range(len(parts)):
                probs = torch.softmax(output.logits[0, -1, :].float(), dim=-1)[choice_ids]
                probs = probs / probs.sum()
                slots.append([round(float(p), 8) for p in probs])
                if index + 1 == len(parts):
                    break
                best = choices[int(torch.argmax(probs))]
                step = self.tokenizer(best + parts[index + 1], return_tensors="pt", add_special_tokens=False)["input_ids"]
                self.usage["prompt_tokens"] += int(step.shape[1])
                output = self.model(input_ids=step, past_key_values=output.past_key_values, use_cache=True)
            if self.cache is not None:
                self.cache.put(key, slots)
            rows.append(slots)
        return rows

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        # batches have fixed boundaries and seeds, so a resumed run regenerates a missing
        # batch exactly as an uninterrupted run would have (and a Ray worker as this process)
        return generate_in_batches(self, prompts, params)

    @torch.inference_mode()
    def compute_batches(self, chunks: list[tuple[int, list[Messages]]], params: SamplingParams,
                        on_batch: Callable[[int, list[Completion]], None]) -> None:
        """Generate the given fixed batches (start, prompts), calling `on_batch(position,
        completions)` as each one ends; no cache, no usage counting (the caller's job)."""
        if not chunks:
            return
        if self.config.decoder == "generate":
            for position, (start, chunk) in enumerate(chunks):
                on_batch(position, self._generate_batch(chunk, params, seed=params.seed + start))
        else:
            self._generate_continuous(chunks, params, on_batch)

    def _generate_continuous(self, chunks: list[tuple[int, list[Messages]]], params: SamplingParams,
                             on_batch: Callable[[int, list[Completion]], None]) -> None:
        """Every given batch through one continuous-batching decoder (scoder.models.llm.decoding):
        at most batch_size * n rows in flight, a batch handed on as soon as all its prompts
        have ended."""
        requests: list[Request] = []
        owners: list[tuple[int, int]] = []  # (chunk position, prompt position in the chunk)
        for position, (start, chunk) in enumerate(chunks):
            encoded = self.tokenizer([self.chat_text(m) for m in chunk], truncation=True,
                                     max_length=self.config.max_input_tokens, add_special_tokens=False)["input_ids"]
            for offset, ids in enumerate(encoded):
                # a prompt's samples are seeded by its place in the whole call, as batches are
                requests.append(Request(ids=list(ids), n=params.n, seed=params.seed + start + offset))
                owners.append((position, offset))
        pending = [len(chunk) for _, chunk in chunks]
        answers: list[list[Completion | None]] = [[None] * len(chunk) for _, chunk in chunks]

        def finished(request_index: int, rows) -> None:
            position, offset = owners[request_index]
            answers[position][offset] = self._completion(requests[request_index], rows, params.stop)
            pending[position] -= 1
            if pending[position] == 0:
                on_batch(position, answers[position])  # type: ignore[arg-type]

        decoder = Decoder(self.model, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id,
                          max_rows=max(1, self.config.max_rows or self.config.batch_size) * params.n, prefix_cache=self.prefix_cache,
                          stop_check=self._stop_check(params.stop))
        sampling = params.temperature > 0
        decoder.run(requests, params.max_tokens, temperature=params.temperature if sampling else 0.0,
                    top_p=params.top_p, on_done=finished)
        self.decode_stats = decoder.stats

    def _stop_check(self, stop: Sequence[str]):
        """Whether a row's text contains a stop string, looking at its last tokens only (a
        token holds at least one byte of text)."""
        stop = [s for s in stop if s]
        if not stop:
            return None
        window = 4 * max(len(s.encode()) for s in stop) + 4

        def check(tokens: list[int]) -> bool:
            tail = self.tokenizer.decode(tokens[-window:], skip_special_tokens=True)
            return any(s in tail for s in stop)

        return check

    def _completion(self, request: Request, rows, stop: Sequence[str]) -> Completion:
        texts, counts, reasons = [], [], []
        for row in rows:
            text, _ = cut_at_stop(self.tokenizer.decode(row.tokens, skip_special_tokens=True), stop)
            texts.append(text)
            counts.append(len(row.tokens))
            reasons.append(row.reason)
        return Completion(texts=texts, prompt_tokens=len(request.ids), completion_tokens=counts, finish_reasons=reasons)

    def _generate_batch(self, chunk: list[Messages], params: SamplingParams, seed: int) -> list[Completion]:
        eos = self.tokenizer.eos_token_id
        batch = self._encode(chunk)
        torch.manual_seed(seed)
        sampling = params.temperature > 0
        output = self.model.generate(
            **batch,
            max_new_tokens=params.max_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None,
            top_k=None,
            num_return_sequences=params.n,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=params.stop or None,
            tokenizer=self.tokenizer if params.stop else None,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        results: list[Completion] = []
        for i in range(len(chunk)):
            texts, counts, reasons = [], [], []
            for j in range(params.n):
                row = new_tokens[i * params.n + j]
                ended = (row == eos).nonzero()
                # everything after the first end-of-sequence token is padding
                length = int(ended[0]) + 1 if len(ended) else int(row.shape[0])
                # generation halts on the token that completes a stop string; the text ends before it
                text, stopped = cut_at_stop(self.tokenizer.decode(row[:length], skip_special_tokens=True), params.stop)
                texts.append(text)
                counts.append(length)
                reasons.append("stop" if len(ended) or stopped else "length")
            results.append(
                Completion(
                    texts=texts,
                    prompt_tokens=int(batch["attention_mask"][i].sum()),
                    completion_tokens=counts,
                    finish_reasons=reasons,
                )
            )
        return results
