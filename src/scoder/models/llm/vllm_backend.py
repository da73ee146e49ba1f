"""vLLM offline engine (GPU; `pip install .[gpu]`). Imported only when selected.

LoRA adapters (a synthesizer checkpoint) are served through `LoRARequest`; `n` samples per
prompt come from one request. Not exercised by this repository's CI (no GPU there).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

from scoder.core.cache import ResponseCache, cache_key, folder_digest
from scoder.models.precision import resolve_precision
from scoder.models.registry import resolve
from scoder.models.llm.base import Completion, LLMConfig, Messages, SamplingParams, is_prefilled


class VLLMBackend:
    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None):
        try:
            from vllm import LLM as Engine
        except ImportError as exc:
            raise ImportError("backend 'vllm' needs the gpu extra: pip install -e '.[gpu]' (CUDA only)") from exc
        self.config = config
        self.cache = cache
        resolved = resolve(config.model)
        if resolved.gguf_file:
            raise ValueError(f"vllm backend: give a hub name or a folder, not the GGUF model '{config.model}'")
        self.precision = resolve_precision(config.precision, "cuda")  # explicit, not vLLM's checkpoint-dtype default
        self.engine = Engine(
            model=resolved.path,
            dtype={"fp32": "float32", "bf16": "bfloat16"}[self.precision],
            tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            enable_lora=bool(config.adapter),
            max_lora_rank=config.max_lora_rank,
            seed=0,
        )
        self.lora = None
        if config.adapter:
            from vllm.lora.request import LoRARequest

            adapter_id = int(hashlib.sha256(config.adapter.encode()).hexdigest()[:6], 16) + 1
            self.lora = LoRARequest(config.adapter, adapter_id, config.adapter)
        # the adapter's content, not its folder name: rounds retrain under the same name
        self.identity = {
            "backend": "vllm",
            "model": resolved.path,
            "adapter_sha256": folder_digest(config.adapter) if config.adapter else None,
            "precision": self.precision,
        }

    def _sampling(self, params: SamplingParams, **extra):
        from vllm import SamplingParams as VSamplingParams

        return VSamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p,
            max_tokens=params.max_tokens, stop=params.stop or None, seed=params.seed, **extra,
        )

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        key = cache_key(self.identity, [list(p) for p in prompts], dataclasses.asdict(params))
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return [Completion(**{**c, "cached": True}) for c in hit]
        prefilled = [is_prefilled(p) for p in prompts]
        if any(prefilled) and not all(prefilled):
            raise ValueError("vllm backend: a batch must be all prefilled (ending in an assistant message) or none")
        continuation = {"continue_final_message": True, "add_generation_prompt": False} if any(prefilled) else {}
        outputs = self.engine.chat([list(p) for p in prompts], self._sampling(params), lora_request=self.lora,
                                   use_tqdm=True, **continuation)
        results = [
            Completion(
                texts=[o.text for o in out.outputs],
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=[len(o.token_ids) for o in out.outputs],
                finish_reasons=["length" if o.finish_reason == "length" else "stop" for o in out.outputs],
            )
            for out in outputs
        ]
        if self.cache is not None:
            self.cache.put(key, [dataclasses.asdict(c) for c in results])
        return results

    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        tokenizer = self.engine.get_tokenizer()
        ids = [tokenizer.encode(t, add_special_tokens=False)[0] for t in tokens]
        params = self._sampling(SamplingParams(max_tokens=1), logprobs=20, allowed_token_ids=None)
        outputs = self.engine.chat([list(p) for p in prompts], params, lora_request=self.lora, use_tqdm=False)
        rows = []
        for out in outputs:
            top = out.outputs[0].logprobs[0]
            rows.append([top[i].logprob if i in top else float("-inf") for i in ids])
        return rows

    def fill_choices(self, prompts, parts, choices):
        raise NotImplementedError(
            "forced template scoring (score.mode: forced, or score.expected) needs the transformers backend; "
            "the vllm backend supports score.mode: generate"
        )
