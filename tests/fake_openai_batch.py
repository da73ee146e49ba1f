"""A local fake of OpenAI's files + batches API on 127.0.0.1, for tests.

It keeps what the real service keeps (uploaded files, batches with their metadata, output and
error files) and counts what a client cannot hide: batches created, requests billed (per
custom_id) and the dollars billed at a given price. Progress is driven by polls: a batch is
`validating` at creation, then `in_progress`, answering `per_poll` requests per poll, then
`completed`. Controls for kill tests: `release` (a batch answers at most `hold_after` requests
until the event is set), `fail_once` (custom_ids whose first attempt ends in the error file),
`download_delay_s` (the content endpoint sends slowly, so a client can be killed mid-download),
`drop_create_answer` (the next create succeeds but its answer is lost on the wire).
"""

from __future__ import annotations

import email.parser
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fake_openai import answer_for


class FakeBatchAPI:
    def __init__(self, price_in_per_1m: float = 1.25, price_out_per_1m: float = 5.0, per_poll: int = 4):
        self.price = (price_in_per_1m, price_out_per_1m)
        self.per_poll = per_poll
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.order: list[str] = []  # batch ids, oldest first
        self.created = 0
        self.billed: Counter = Counter()  # custom_id -> times billed
        self.billed_usd = 0.0
        self.downloads = 0
        self.download_started = threading.Event()
        self.download_delay_s = 0.0
        self.fail_once: set[str] = set()
        self.failed: Counter = Counter()
        self.release = threading.Event()
        self.release.set()
        self.hold_after = 0
        self.drop_create_answer = False
        self.lock = threading.Lock()
        self._requests: dict[str, list[dict]] = {}  # batch id -> request lines
        self._results: dict[str, list[dict]] = {}
        self._errors: dict[str, list[dict]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.path.endswith("/files"):
                    return self._send(200, server._upload(self.headers.get("Content-Type", ""), raw))
                if self.path.endswith("/batches"):
                    batch = server._create(json.loads(raw))
                    if server.drop_create_answer:
                        server.drop_create_answer = False
                        self.close_connection = True
                        return  # created, but the client never hears it
                    return self._send(200, batch)
                self._send(404, {"error": f"no route {self.path}"})

            def do_GET(self):  # noqa: N802
                path, _, query = self.path.partition("?")
                parts = path.rstrip("/").split("/")
                if parts[-1] == "content" and parts[-3] == "files":
                    return self._content(parts[-2])
                if parts[-1] == "batches":
                    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                    return self._send(200, server._list(int(params.get("limit", 20)), params.get("after")))
                if parts[-2] == "batches":
                    batch = server._poll(parts[-1])
                    return self._send(200, batch) if batch else self._send(404, {"error": "no such batch"})
                self._send(404, {"error": f"no route {self.path}"})

            def _content(self, file_id):
                data = server.files.get(file_id)
                if data is None:
                    return self._send(404, {"error": "no such file"})
                with server.lock:
                    server.downloads += 1
                server.download_started.set()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/jsonl")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    step = max(1, len(data) // 20)
                    for start in range(0, len(data), step):
                        self.wfile.write(data[start : start + step])
                        self.wfile.flush()
                        if server.download_delay_s:
                            time.sleep(server.download_delay_s / 20)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
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

    # --- the service -------------------------------------------------------------------------
    def _upload(self, content_type: str, raw: bytes) -> dict:
        message = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                  for part in message.get_payload()}
        assert fields.get("purpose") == b"batch", fields.get("purpose")
        with self.lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = fields["file"]
        return {"id": file_id, "object": "file", "purpose": "batch", "bytes": len(fields["file"])}

    def _create(self, body: dict) -> dict:
        with self.lock:
            data = self.files[body["input_file_id"]]
            batch_id = f"batch_{len(self.batches) + 1}"
            self.created += 1
            self._requests[batch_id] = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
            self._results[batch_id], self._errors[batch_id] = [], []
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"], "status": "validating",
                "metadata": body.get("metadata") or {}, "output_file_id": None, "error_file_id": None,
                "request_counts": {"total": len(self._requests[batch_id]), "completed": 0, "failed": 0},
            }
            self.order.append(batch_id)
            return dict(self.batches[batch_id])

    def _list(self, limit: int, after: str | None) -> dict:
        with self.lock:
            newest_first = list(reversed(self.order))
            if after in newest_first:
                newest_first = newest_first[newest_first.index(after) + 1 :]
            page = newest_first[:limit]
            return {"object": "list", "data": [dict(self.batches[b]) for b in page], "has_more": len(newest_first) > limit}

    def _answer(self, request: dict) -> tuple[dict | None, dict | None]:
        body = request["body"]
        key = request["custom_id"]
        if key in self.fail_once and not self.failed[key]:
            self.failed[key] += 1
            return None, {"id": f"err-{key[:8]}", "custom_id": key, "response": {"status_code": 500, "body": {"error": "boom"}},
                          "error": None}
        prompt = body["messages"][-1]["content"]
        words = answer_for(prompt).split(" ")
        finish = "stop"
        if len(words) > body.get("max_tokens", 10**9):
            words, finish = words[: body["max_tokens"]], "length"
        text = " ".join(words)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        self.billed[key] += 1
        self.billed_usd += usage["prompt_tokens"] / 1e6 * self.price[0] + usage["completion_tokens"] / 1e6 * self.price[1]
        response = {"status_code": 200, "request_id": f"req-{key[:8]}", "body": {
            "id": f"chatcmpl-{key[:8]}", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": usage}}
        return {"id": f"res-{key[:8]}", "custom_id": key, "response": response, "error": None}, None

    def _poll(self, batch_id: str) -> dict | None:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            if batch["status"] == "validating":
                batch["status"] = "in_progress"
            elif batch["status"] == "in_progress":
                requests = self._requests[batch_id]
                counts = batch["request_counts"]
                done = counts["completed"] + counts["failed"]
                limit = len(requests) if self.release.is_set() else min(len(requests), self.hold_after)
                for request in requests[done : min(limit, done + self.per_poll)]:
                    result, error = self._answer(request)
                    if result:
                        self._results[batch_id].append(result)
                        counts["completed"] += 1
                    else:
                        self._errors[batch_id].append(error)
                        counts["failed"] += 1
                if counts["completed"] + counts["failed"] == len(requests):
                    batch["status"] = "completed"
                    for field, lines in (("output_file_id", self._results[batch_id]), ("error_file_id", self._errors[batch_id])):
                        if lines:
                            file_id = f"file-{len(self.files) + 1}"
                            self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
                            batch[field] = file_id
            return json.loads(json.dumps(batch))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
