"""A tracking server on a local port for the search's unit tests: answers MLflow's REST calls
as `mlflow server` does (runs get ids run-0, run-1, ...), or as a test scripts them, and
records every request."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

API = "/api/2.0/mlflow/"


@dataclass(frozen=True)
class Request:
    method: str
    endpoint: str  # after /api/2.0/mlflow/
    body: dict[str, Any]  # the JSON body, or a GET's query
    authorization: str | None
    answered_at: float = 0.0  # time.time()


@dataclass(frozen=True)
class Answer:
    status: int
    text: str

    @classmethod
    def json(cls, body: dict[str, Any], status: int = 200) -> Answer:
        return cls(status, json.dumps(body))

    @classmethod
    def error(cls, code: str, status: int = 400) -> Answer:
        return cls(status, json.dumps({"error_code": code, "message": f"{code} here"}))


class FakeMlflow:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.scripted: dict[str, deque[Answer]] = defaultdict(deque)
        self.search_results: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.created = 0
        self.delay = 0.0  # seconds each answer takes
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                text = self.rfile.read(length).decode() if length else ""
                body = (json.loads(text) if text else
                        {key: value for key, value in urllib.parse.parse_qsl(url.query)})
                endpoint = url.path.removeprefix(API)
                time.sleep(fake.delay)
                with fake.lock:
                    fake.requests.append(Request(method, endpoint, body,
                                                 self.headers.get("Authorization"),
                                                 time.time()))
                    answer = (fake.scripted[endpoint].popleft() if fake.scripted[endpoint]
                              else fake.canned(endpoint, body))
                data = answer.text.encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.answer("GET")

            def do_POST(self) -> None:
                self.answer("POST")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def canned(self, endpoint: str, body: dict[str, Any]) -> Answer:
        if endpoint == "runs/create":
            run_id = f"run-{self.created}"
            self.created += 1
            info = {"run_id": run_id, "run_uuid": run_id, "status": "RUNNING",
                    "experiment_id": str(body.get("experiment_id")),
                    "start_time": body.get("start_time"), "lifecycle_stage": "active"}
            return Answer.json({"run": {"info": info, "data": {}}})
        if endpoint == "runs/update":
            return Answer.json({"run_info": {"run_id": body.get("run_id"),
                                             "status": body.get("status")}})
        if endpoint == "runs/search":
            return Answer.json({"runs": self.search_results})
        if endpoint == "experiments/get-by-name":
            return Answer.json({"experiment": {"experiment_id": "7",
                                               "name": body.get("experiment_name"),
                                               "lifecycle_stage": "active"}})
        if endpoint == "experiments/create":
            return Answer.json({"experiment_id": "7"})
        return Answer.json({})

    def script(self, endpoint: str, *answers: Answer) -> None:
        self.scripted[endpoint].extend(answers)

    def sent(self, endpoint: str) -> list[dict[str, Any]]:
        return [request.body for request in self.requests if request.endpoint == endpoint]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
