"""OpenAI-compatible chat completions (OpenAI itself, `vllm serve`, any compatible server).

- The API key is read from the environment variable named by `api_key_env`; it never
  appears in params, logs, MLflow or the cache.
- Bounded concurrency (a thread pool of `max_concurrency`).
- Retries with exponential backoff and full jitter on 429, 5xx, timeouts, connection errors
  and malformed bodies; other 4xx are errors at once (they would fail again).
- Every successful response is committed to the persistent cache before it is used, keyed
  by (endpoint, model, messages, sampling params, sample index), so a rerun or a crash
  never pays twice.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import requests

from scoder.core.cache import ResponseCache, cache_key
from scoder.models.llm.base import Completion, LLMConfig, Messages, SamplingParams, is_prefilled

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(RuntimeError):
    """The endpoint failed for good (retry budget spent, or a non-retryable answer)."""


class OpenAICompatibleLLM:
    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None, session: requests.Session | None = None):
        self.config = config
        self.cache = cache
        self.precision = "n/a"  # the server chooses; `config.precision` does not apply
        self.url = config.endpoint.rstrip("/") + "/chat/completions"
        self._session = session or requests.Session()
        self._rng = random.Random()  # jitter only; never affects outputs
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0}

    # --- HTTP with retries -------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        last_problem = "no attempt made"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                self._count("retries")
                delay = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
                time.sleep(self._rng.uniform(0, delay))  # full jitter
            self._count("requests")
            try:
                response = self._session.post(self.url, json=body, headers=self._headers(), timeout=cfg.timeout_s)
            except requests.Timeout:
                last_problem = f"timed out after {cfg.timeout_s}s"
                continue
            except requests.ConnectionError as exc:
                last_problem = f"connection failed ({type(exc).__name__})"
                continue
            if response.status_code in RETRY_STATUS:
                last_problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise EndpointError(f"{self.url} answered HTTP {response.status_code}: {response.text[:300]}")
            try:
                data = response.json()
                data["choices"][0]["message"]
            except (ValueError, KeyError, IndexError, TypeError):
                last_problem = "malformed response body"
                continue
            return data
        raise EndpointError(f"{self.url} failed after {cfg.max_retries + 1} attempts: {last_problem}")

    # --- one sample ------------------------------------------------------------------------
    def _sample(self, messages: Messages, params: SamplingParams, index: int) -> dict[str, Any]:
        sampling = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stop": params.stop or None,
            "seed": params.seed + index,
        }
        key = cache_key("openai", self.config.endpoint, self.config.model, messages, sampling)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self._count("cache_hits")
            return {**hit, "cached": True}
        body = {"model": self.config.model, "messages": messages, **{k: v for k, v in sampling.items() if v is not None}}
        data = self._post(body)
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        result = {
            "text": choice["message"].get("content") or "",
            "finish_reason": choice.get("finish_reason") or "stop",
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
        }
        if self.cache is not None:
            self.cache.put(key, result)  # committed before anything else can fail
        return {**result, "cached": False}

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        # one request per sample (n=1 each): each is cached on its own, and servers that
        # ignore `n` or bill it differently behave the same
        if any(is_prefilled(p) for p in prompts):
            # the chat completions API has no portable "continue this assistant message"
            raise ValueError("the openai backend cannot continue a prefilled assistant message "
                             "(template-guided synthesis, evalplus chat prompts): use transformers or vllm")
        jobs = [(p, j) for p in range(len(prompts)) for j in range(params.n)]
        pool = ThreadPoolExecutor(max_workers=max(1, self.config.max_concurrency))
        futures = [pool.submit(self._sample, list(prompts[p]), params, j) for p, j in jobs]
        try:
            samples = [future.result() for future in futures]
        except BaseException:
            # a fatal error stops the run: requests not yet sent are never sent
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        results = []
        for p in range(len(prompts)):
            mine = samples[p * params.n : (p + 1) * params.n]
            results.append(
                Completion(
                    texts=[s["text"] for s in mine],
                    prompt_tokens=max(s["prompt_tokens"] for s in mine),
                    completion_tokens=[s["completion_tokens"] for s in mine],
                    finish_reasons=[s["finish_reason"] for s in mine],
                    cached=all(s["cached"] for s in mine),
                )
            )
        return results

    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        """From the top-20 logprobs of the first generated token; tokens outside the top 20
        get -inf (probability 0)."""
        rows = []
        for messages in prompts:
            body = {"model": self.config.model, "messages": list(messages), "max_tokens": 1, "temperature": 0.0,
                    "logprobs": True, "top_logprobs": 20}
            key = cache_key("openai-logprobs", self.config.endpoint, body)
            top = self.cache.get(key) if self.cache is not None else None
            if top is None:
                data = self._post(body)
                content = ((data["choices"][0].get("logprobs") or {}).get("content") or [{}])[0]
                top = {item["token"]: item["logprob"] for item in content.get("top_logprobs", [])}
                if self.cache is not None:
                    self.cache.put(key, top)
            rows.append([top.get(token, float("-inf")) for token in tokens])
        return rows

    def fill_choices(self, prompts, parts, choices):
        raise NotImplementedError(
            "forced template scoring (score.mode: forced, or score.expected) needs the transformers backend; "
            "the openai backend supports score.mode: generate"
        )
