"""A small OpenAI-compatible server for tests, on 127.0.0.1, with programmable faults.

It answers /chat/completions deterministically from the prompt, counts every request and
every successful ("paid") answer per prompt, and applies a queue of faults to the next
requests: 429, 500, a slow answer beyond the client's timeout, a malformed body.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


ASPECTS = ["Consistency", "Relevance", "Difficulty", "Code Exist", "Code Correctness",
           "Code Standardization", "Code Clarity", "Code Comments", "Easy to Learn", "Composite Score"]


def judge_answer_for(prompt: str) -> str:
    """A Figure-7 judge answer whose scores follow from the prompt's hash."""
    digest = hashlib.sha256(prompt.encode()).digest()
    block = ",\n".join(f'  "{a}": {digest[i] % 10}' for i, a in enumerate(ASPECTS))
    return f"[Reason]\nThe pair is consistent and the code is plausible.\n[Score]\n{{\n{block}\n}}\n[End]"


def answered_tags(cache_file) -> set[str]:
    """Tags (the `f_<tag>` of `answer_for`, the prompt hash's first 8 hex digits) of the
    answers that reached a client and were committed to its response cache."""
    import sqlite3
    from pathlib import Path

    if not Path(cache_file).exists():
        return set()
    with sqlite3.connect(cache_file) as db:
        texts = [json.loads(value)["text"] for (value,) in db.execute("SELECT value FROM responses")]
    return {text.split("`f_")[1][:8] for text in texts if "`f_" in text}


def answer_for(prompt: str) -> str:
    if "evaluate the quality of this code data pair" in prompt:
        return judge_answer_for(prompt)
    tag = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return (
        f"[Problem Description]\nWrite `f_{tag}(x)` that returns x plus one.\n\n"
        f"[Solution]\nWe add one.\n```python\ndef f_{tag}(x):\n    return x + 1\n```\nDone."
    )


class FakeOpenAI:
    def __init__(self, delay_s: float = 0.0):
        self.faults: list[str] = []
        self.delay_s = delay_s
        self.requests = 0
        self.paid: Counter = Counter()  # prompt hash -> successful answers
        self.billed_tokens: list[tuple[int, int]] = []  # (prompt, completion) tokens of every answer served
        self.seen_auth: set[str] = set()
        self.lock = threading.Lock()
        self.slow_s = 3.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests += 1
                    server.seen_auth.add(self.headers.get("Authorization", ""))
                    fault = server.faults.pop(0) if server.faults else None
                if fault == "429":
                    return self._send(429, {"error": "rate limited"})
                if fault == "500":
                    return self._send(500, {"error": "boom"})
                if fault == "400":
                    return self._send(400, {"error": "bad request"})
                if fault == "slow":
                    time.sleep(server.slow_s)
                if fault == "malformed":
                    return self._send_raw(200, b'{"choices": [ {"mess')
                if server.delay_s:
                    time.sleep(server.delay_s)
                prompt = body["messages"][-1]["content"]
                if body.get("logprobs"):
                    content = [{"token": "yes", "logprob": -0.2, "top_logprobs": [{"token": "yes", "logprob": -0.2}, {"token": "no", "logprob": -1.8}]}]
                    payload = {"choices": [{"message": {"content": "yes"}, "logprobs": {"content": content}, "finish_reason": "length"}], "usage": {"prompt_tokens": 10, "completion_tokens": 1}}
                else:
                    text = answer_for(prompt)
                    payload = {
                        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())},
                    }
                with server.lock:
                    server.paid[hashlib.sha256(prompt.encode()).hexdigest()] += 1
                    usage = payload["usage"]
                    server.billed_tokens.append((usage["prompt_tokens"], usage["completion_tokens"]))
                self._send(200, payload)

            def _send(self, status, payload):
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status, data):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
