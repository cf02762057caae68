#!/usr/bin/env python3
"""A model server on loopback that speaks the OpenAI chat-completions and Anthropic Messages
APIs, streamed or not, and injects the faults real providers produce. The test suite starts it.

The model name chooses the behaviour:
  echo            answers "echo: <last user message>" (any other name does the same)
  long            answers with finish reason length / stop reason max_tokens
  fault-429       429 with Retry-After: 1         fault-500   500
  fault-529       529 overloaded                  fault-401   401 bad key
  fault-context   400 "maximum context length"    malformed   200 with a body that is not JSON
  echo-key-401    401 whose message quotes the key it was sent, as some providers' do
  echo-key-400    400 whose message quotes the key      echo-key-stream  an error event quoting it
  slow-body       sends the head, then one byte per second
  never           accepts the request and never answers
  reset-stream    streams two events, then drops the connection
  truncated       streams without the final event
  huge            a 2 MB answer
  flaky-<n>-<tag> fails its first n requests with 500, then answers
  ratelimited-<tag>  429 with Retry-After: 1 once, then answers
  once-<tag>      answers its first request, then fails every other with 500
  sleep-<ms>      answers after <ms> milliseconds (the benchmark's model)
  done-hang       streams the answer, its final event ([DONE], message_stop), then keeps the
                  connection open for 60 s without another byte
  plain-stream    answers a streamed request with one plain JSON body (application/json)
  bad-utf8        answers "echo: <byte 0xFF> …": the answer's JSON text (body or event) holds a byte
                  that is not UTF-8
  big-event-<mb>  streams one text delta of <mb> MB (one event), then the usual end
  huge-error      500 with a 60 MB body
  fault-408       408 request timeout             fault-403   403 for this key
  detail-error    400 whose body is {"detail": "..."} (FastAPI servers, LiteLLM)
  no-usage        answers without any token counts (no usage object, no usage event), as
                  servers that ignore stream_options.include_usage do
  late-usage      Anthropic streams: message_start says 0 input tokens, message_delta the real
                  counts (as LiteLLM's proxy does)
  hold-<tag>      accepts the request and answers nothing for 60 s, watching the connection:
                  GET /hold/<tag> says {"requests": n, "closed": n, "closedAfter": [seconds]},
                  how many such requests came and how many the client hung up on, and when
  quota-<tag>     one request per window of about a second: each answer's rate-limit headers
                  (OpenAI's x-ratelimit-*, Anthropic's anthropic-ratelimit-*) say none is left
                  until the window ends, and a request inside the window gets a 429
GET /in-flight says {"now": n, "peak": n}: POST requests being answered at once, now and at
most since the server started. A request stops counting just before the last bytes of its answer
are written, so a client that has its whole answer is never still counted.
Requests must carry the key "test-key" (Authorization: Bearer for OpenAI, x-api-key for
Anthropic) unless the model is "no-auth". It prints "PORT <n>" once listening.
"""

import datetime
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "test-key"
# Written as the byte 0xFF (never UTF-8) wherever it appears in an answer (model bad-utf8).
INVALID_UTF8_MARK = b"<not-utf8>"
# Requests seen per model name, for the models that fail a given number of times first.
SEEN: dict[str, int] = {}
SEEN_LOCK = threading.Lock()
# The end of each quota-<tag> model's current window (time.time()).
WINDOWS: dict[str, float] = {}
# hold-<tag>: requests received, and the seconds after which each client closed its connection.
HOLDS: dict[str, dict] = {}
# POST requests being answered now, and the most at once.
IN_FLIGHT = {"now": 0, "peak": 0}
# Its own lock: an answer may be sent while SEEN_LOCK is held (quota-<tag>).
IN_FLIGHT_LOCK = threading.Lock()


def seen(model: str) -> int:
    """How many requests for `model` came before this one."""
    with SEEN_LOCK:
        count = SEEN.get(model, 0)
        SEEN[model] = count + 1
        return count


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: with Nagle's algorithm the body would wait for
    # the client's delayed ACK of the head, adding 40 ms to every answer.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # quiet
        pass

    def send_json(self, status, payload, headers=()):
        body = json.dumps(payload).encode().replace(INVALID_UTF8_MARK, b"\xff")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.answered()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/in-flight":
            with IN_FLIGHT_LOCK:
                answer = dict(IN_FLIGHT)
            return self.send_json(200, answer)
        if self.path.startswith("/hold/"):
            with SEEN_LOCK:
                hold = HOLDS.get(self.path.removeprefix("/hold/"), {"requests": 0, "closedAfter": []})
                answer = {"requests": hold["requests"], "closed": len(hold["closedAfter"]),
                          "closedAfter": list(hold["closedAfter"])}
            return self.send_json(200, answer)
        return self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def hold(self, tag):
        """Answers nothing; notes when the client closes the connection (a cancelled transfer)."""
        started = time.monotonic()
        with SEEN_LOCK:
            HOLDS.setdefault(tag, {"requests": 0, "closedAfter": []})["requests"] += 1
        self.connection.settimeout(0.05)
        while time.monotonic() - started < 60:
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    break  # end of file: the client closed its end
            except socket.timeout:
                continue
            except OSError:
                break
        else:
            return
        with SEEN_LOCK:
            HOLDS[tag]["closedAfter"].append(round(time.monotonic() - started, 3))
        self.close_connection = True

    def do_POST(self):
        with IN_FLIGHT_LOCK:
            IN_FLIGHT["now"] += 1
            IN_FLIGHT["peak"] = max(IN_FLIGHT["peak"], IN_FLIGHT["now"])
        self.counted = True
        try:
            return self.answer_post()
        finally:
            self.answered()

    def answered(self):
        """The request stops counting as in flight (once)."""
        if getattr(self, "counted", False):
            self.counted = False
            with IN_FLIGHT_LOCK:
                IN_FLIGHT["now"] -= 1

    def answer_post(self):
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        # The two APIs' paths exactly, as the providers serve them: a base URL that is wrong gets a 404.
        anthropic = self.path == "/v1/messages"
        if not anthropic and self.path != "/v1/chat/completions":
            return self.send_json(404, {"error": {"message": f"no route {self.path}"}})
        model = request.get("model", "")
        key = self.headers.get("x-api-key") if anthropic else (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if model == "echo-key-401":
            return self.send_json(401, {"error": {"message": f"Incorrect API key provided: {key}"}})
        if model == "echo-key-400":
            return self.send_json(400, {"error": {"message": f"bad request from key {key}"}})
        if model == "echo-key-stream" and request.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            event = {"error": {"message": f"stream refused for {key}"}} if not anthropic else \
                {"type": "error", "error": {"type": "api_error", "message": f"stream refused for {key}"}}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True
            return
        if model != "no-auth" and key != KEY or model == "fault-401":
            return self.send_json(401, {"error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        if model.startswith("flaky-") and seen(model) < int(model.split("-")[1]):
            return self.send_json(500, {"error": {"message": "transient failure"}})
        if model.startswith("once-") and seen(model) > 0:
            return self.send_json(500, {"error": {"message": "asked twice"}})
        if model.startswith("ratelimited-") and seen(model) == 0:
            return self.send_json(429, {"error": {"message": "slow down"}}, [("Retry-After", "1")])
        quota_headers = []
        if model.startswith("quota-"):
            with SEEN_LOCK:
                now = time.time()
                if now < WINDOWS.get(model, 0):
                    return self.send_json(429, {"error": {"message": "quota used up"}},
                                          [("Retry-After", str(math.ceil(WINDOWS[model] - now)))])
                end = math.ceil(now + 1)  # whole seconds, as Anthropic's reset times are
                WINDOWS[model] = end
            reset = datetime.datetime.fromtimestamp(end, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            quota_headers = [
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", f"{math.ceil((end - now) * 1000)}ms"),
                ("x-ratelimit-remaining-tokens", "100000"),
                ("x-ratelimit-reset-tokens", "1s"),
            ] if not anthropic else [
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", reset),
            ]
        if model == "huge-error":
            body = b'{"error": {"message": "' + b"x" * (60 << 20) + b'"}}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except ConnectionError:
                pass  # the client read what it needed and hung up
            return
        if model == "fault-408":
            return self.send_json(408, {"error": {"message": "request timed out"}})
        if model == "fault-403":
            return self.send_json(403, {"error": {"type": "permission_error", "message": "this key may not use the model"}})
        if model == "detail-error":
            return self.send_json(400, {"detail": "unknown parameter: temperature_x"})
        if model == "plain-stream" and request.get("stream"):
            request["stream"] = False  # answered below as if it had not asked to stream
        if model.startswith("hold-"):
            return self.hold(model.removeprefix("hold-"))
        if model.startswith("sleep-"):
            time.sleep(int(model.split("-")[1]) / 1000)
        if model == "fault-429":
            return self.send_json(429, {"error": {"message": "Rate limit reached"}}, [("Retry-After", "1")])
        if model == "fault-500":
            return self.send_json(500, {"error": {"message": "internal server error"}})
        if model == "fault-529":
            return self.send_json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        if model == "fault-context":
            return self.send_json(400, {"error": {"message": "This model's maximum context length is 8192 tokens"}})
        if model == "never":
            time.sleep(120)
            return
        if model == "malformed":
            body = b'{"choices": [ this is not json'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if model == "slow-body":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)
            return
        messages = request.get("messages", [])
        last = messages[-1]["content"] if messages else ""
        text = "x" * 2_000_000 if model == "huge" else f"echo: {last}"
        if model == "bad-utf8":
            text = f"echo: {INVALID_UTF8_MARK.decode()} {last}"
        if model.startswith("big-event-"):
            text = "y" * (int(model.removeprefix("big-event-")) << 20)
        stopped = "long" if model == "long" else "stop"
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        completion_tokens = len(text.split())
        if request.get("stream"):
            return self.stream(anthropic, model, text, stopped, prompt_tokens, completion_tokens)
        if anthropic:
            answer = {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if stopped == "long" else "end_turn",
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
            }
        else:
            answer = {
                "id": "chatcmpl-1", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "length" if stopped == "long" else "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
            }
        if model == "no-usage":
            del answer["usage"]
        return self.send_json(200, answer, quota_headers)

    def stream(self, anthropic, model, text, stopped, prompt_tokens, completion_tokens):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()  # no Content-Length: the connection closes at the end
        whole = model.startswith("big-event-") or model == "bad-utf8"
        pieces = [text] if whole else [text[i:i + 7] for i in range(0, len(text), 7)] or [""]

        def send(event, payload):
            prefix = f"event: {event}\n" if event else ""
            data = json.dumps(payload) if not isinstance(payload, str) else payload
            self.wfile.write(f"{prefix}data: {data}\n\n".encode().replace(INVALID_UTF8_MARK, b"\xff"))
            self.wfile.flush()

        if anthropic:
            start_usage = {} if model == "no-usage" else {"usage": {"input_tokens": 0 if model == "late-usage" else prompt_tokens}}
            send("message_start", {"type": "message_start", "message": {"model": model, **start_usage}})
            send("ping", {"type": "ping"})
        for number, piece in enumerate(pieces):
            if model == "reset-stream" and number == 2:
                # shutdown, not close: the handler's file objects still hold the socket open.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if anthropic:
                send("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": piece}})
            else:
                send(None, {"model": model, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        if model == "truncated":
            self.close_connection = True
            return
        if anthropic:
            delta_usage = {"output_tokens": completion_tokens}
            if model == "late-usage":
                delta_usage["input_tokens"] = prompt_tokens
            delta = {"type": "message_delta", "delta": {"stop_reason": "max_tokens" if stopped == "long" else "end_turn"}}
            if model != "no-usage":
                delta["usage"] = delta_usage
            send("message_delta", delta)
            self.answered()
            send("message_stop", {"type": "message_stop"})
        else:
            reason = "length" if stopped == "long" else "stop"
            send(None, {"model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
            if model != "no-usage":
                send(None, {"model": model, "choices": [],
                            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}})
            self.answered()
            send(None, "[DONE]")
        if model == "done-hang":
            time.sleep(60)
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the tests open a hundred connections at once

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hung up (a cancelled or timed-out request) is expected here
        super().handle_error(request, client_address)


def exit_with_parent():
    """Ends the process when standard input reaches its end: the test process that holds the
    other end has exited (a suite's server may live as long as that process)."""
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    # A parent may have blocked signals (a server's signal thread does); SIGTERM must still work.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
    if "--exit-with-stdin" in sys.argv:
        threading.Thread(target=exit_with_parent, daemon=True).start()
    server = Server(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
