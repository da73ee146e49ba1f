"""transformers backend: hub names, local folders or GGUF files; batched, left-padded."""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from ..models import resolve
from .base import Completion, LLMConfig, Messages, SamplingParams

log = logging.getLogger(__name__)


class TransformersLLM:
    def __init__(self, config: LLMConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)
        resolved = resolve(config.model)
        log.info("loading %s with transformers (%s)", config.model, resolved.gguf_file or resolved.path)
        kwargs = {"gguf_file": resolved.gguf_file} if resolved.gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.path, **kwargs)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32, **kwargs)
        if config.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, config.adapter)
        self.model = model.eval()

    def _encode(self, prompts: Sequence[Messages]) -> dict[str, torch.Tensor]:
        texts = [
            self.tokenizer.apply_chat_template(list(m), add_generation_prompt=True, tokenize=False)
            for m in prompts
        ]
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
            logits = self.model(**batch).logits[:, -1, :]  # left padding: last column is real
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, token_ids]
            rows.extend(logprobs.tolist())
        return rows

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        results: list[Completion] = []
        size = max(1, self.config.batch_size)
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(prompts), size):
            batch = self._encode(prompts[start : start + size])
            torch.manual_seed(params.seed + start)
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
            prompt_len = batch["input_ids"].shape[1]
            new_tokens = output[:, prompt_len:]
            for i in range(batch["input_ids"].shape[0]):
                texts, counts, reasons = [], [], []
                for j in range(params.n):
                    row = new_tokens[i * params.n + j]
                    ended = (row == eos).nonzero()
                    # everything after the first end-of-sequence token is padding
                    length = int(ended[0]) + 1 if len(ended) else int(row.shape[0])
                    texts.append(self.tokenizer.decode(row[:length], skip_special_tokens=True))
                    counts.append(length)
                    reasons.append("stop" if len(ended) else "length")
                results.append(
                    Completion(
                        texts=texts,
                        prompt_tokens=int(batch["attention_mask"][i].sum()),
                        completion_tokens=counts,
                        finish_reasons=reasons,
                    )
                )
        return results
