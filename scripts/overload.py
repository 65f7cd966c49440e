#!/usr/bin/env python3
"""Sustained overload against the real binaries: does enterprise work stay ahead of a free flood?

One Ollama slot (a fake Ollama in this script answers each chat after --service-ms), a free
flood and an enterprise stream above and below capacity, through `seadragon serve` (embedded
queue) or `seadragon gateway` + `seadragon worker` (RabbitMQ, with --amqp-url). It prints each
tier's queue wait (from the client's send to the fake's start of the job, both on this
script's clock) and the share of dispatches per tier while both tiers had work.

    cargo build --release
    python3 scripts/overload.py                       # embedded
    python3 scripts/overload.py --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f

Only loopback is used; every phase is bounded in time. Needs nothing beyond Python 3.
"""

import argparse
import http.client
import http.server
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ADMIN = "sk-sd-overload-admin-" + os.urandom(12).hex()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeOllama(http.server.ThreadingHTTPServer):
    """Just enough of Ollama's native API for one model, one slot at a time."""

    daemon_threads = True

    def __init__(self, port, service):
        super().__init__(("127.0.0.1", port), Handler)
        self.service = service
        self.started = []  # (prompt, time)
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/api/version":
            self.reply({"version": "0.33.0"})
        elif self.path == "/api/tags":
            model = {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 1,
                     "digest": "0" * 64, "modified_at": "2025-05-04T17:37:44.706015396-07:00",
                     "details": {"format": "gguf", "family": "llama", "families": ["llama"],
                                 "parameter_size": "3.2B", "quantization_level": "Q4_K_M",
                                 "parent_model": ""}}
            self.reply({"models": [model]})
        else:
            self.reply({"error": "not found"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.path != "/api/chat":
            self.reply({"error": "not found"}, 404)
            return
        prompt = body["messages"][-1]["content"]
        with self.server.lock:
            self.server.started.append((prompt, time.monotonic()))
        time.sleep(self.server.service)
        line = {"model": body["model"], "created_at": "2025-05-05T00:00:00Z",
                "message": {"role": "assistant", "content": "ok"}, "done": True,
                "done_reason": "stop", "prompt_eval_count": 1, "eval_count": 1}
        data = (json.dumps(line) + "\n").encode()
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def request(port, method, path, key, body=None, timeout=900):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start(binary, role, env, log):
    return subprocess.Popen([binary, role], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(port, deadline):
    while time.monotonic() < deadline:
        try:
            status, body = request(port, "GET", "/admin/models", ADMIN, timeout=2)
            if status == 200 and json.loads(body)["data"]:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("seadragon did not become ready (see the log above)")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="target/release/seadragon")
    parser.add_argument("--amqp-url", help="run gateway + worker over this RabbitMQ")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--service-ms", type=float, default=100)
    parser.add_argument("--free-per-sec", type=float, default=25)
    parser.add_argument("--enterprise-per-sec", type=float, default=2.5)
    parser.add_argument("--starvation-secs", type=float, default=1)
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} is missing: run `cargo build --release` first")

    fake_port, port = free_port(), free_port()
    fake = FakeOllama(fake_port, args.service_ms / 1000)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="seadragon-overload-")
    with open(os.path.join(work, "tiers.toml"), "w") as f:
        for name, priority in (("free", 1), ("enterprise", 3)):
            f.write(f'[[tiers]]\nname = "{name}"\npriority = {priority}\n'
                    'requests_per_minute = 1000000\nmax_concurrent = 100000\n'
                    'max_queued = 100000\nmax_wait_secs = 600\n\n')
    env = dict(os.environ,
               SEADRAGON_LISTEN=f"127.0.0.1:{port}",
               SEADRAGON_OLLAMA_URL=f"http://127.0.0.1:{fake_port}",
               SEADRAGON_DATABASE_URL=f"sqlite://{work}/keys.db",
               SEADRAGON_ADMIN_KEY=ADMIN,
               SEADRAGON_SLOTS="1",
               SEADRAGON_AGING_SECS=str(args.starvation_secs),
               SEADRAGON_CONFIG=os.path.join(work, "tiers.toml"),
               RUST_LOG="warn")
    log = open(os.path.join(work, "seadragon.log"), "w")
    procs = []
    if args.amqp_url:
        env.update(SEADRAGON_AMQP_URL=args.amqp_url,
                   SEADRAGON_AMQP_PREFIX="overload-" + os.urandom(4).hex())
        procs.append(start(args.binary, "gateway", env, log))
        procs.append(start(args.binary, "worker", dict(env, SEADRAGON_LISTEN="127.0.0.1:0"), log))
    else:
        procs.append(start(args.binary, "serve", env, log))
    try:
        wait_ready(port, time.monotonic() + 60)
        keys = {}
        for tier in ("free", "enterprise"):
            status, body = request(port, "POST", "/admin/keys", ADMIN,
                                   {"name": f"overload-{tier}", "tier": tier})
            assert status == 201, body
            keys[tier] = json.loads(body)["key"]
        sent, answers, enterprise = {}, {}, []

        def send(tier, n):
            prompt = f"{tier}-{n}"
            sent[prompt] = time.monotonic()
            body = {"model": "llama3.2", "messages": [{"role": "user", "content": prompt}]}
            try:
                answers[prompt] = request(port, "POST", "/v1/chat/completions", keys[tier], body)[0]
            except OSError as e:
                answers[prompt] = str(e)

        begin = time.monotonic()
        counts = {"free": 0, "enterprise": 0}
        rates = {"free": args.free_per_sec, "enterprise": args.enterprise_per_sec}
        while (now := time.monotonic()) - begin < args.seconds:
            for tier, rate in rates.items():
                while counts[tier] < (now - begin) * rate:
                    t = threading.Thread(target=send, args=(tier, counts[tier]), daemon=True)
                    t.start()
                    if tier == "enterprise":
                        enterprise.append(t)
                    counts[tier] += 1
            time.sleep(0.005)
        print(f"sent {counts['free']} free and {counts['enterprise']} enterprise requests "
              f"in {args.seconds:.0f} s; waiting for the enterprise answers", flush=True)
        for t in enterprise:
            t.join(timeout=600)
        end = time.monotonic()
        with fake.lock:
            started = list(fake.started)
        report(args, sent, answers, started, begin, end)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        fake.shutdown()
        log.close()


def report(args, sent, answers, started, begin, end):
    backend = "RabbitMQ" if args.amqp_url else "embedded"
    waits = {"free": [], "enterprise": []}
    for prompt, at in started:
        tier = prompt.split("-")[0]
        waits[tier].append(at - sent[prompt])
    ent_ok = sum(1 for p, s in answers.items() if p.startswith("enterprise") and s == 200)
    ent_sent = sum(1 for p in sent if p.startswith("enterprise"))
    print(f"\n{backend}: one slot, {args.service_ms:.0f} ms jobs, free {args.free_per_sec}/s, "
          f"enterprise {args.enterprise_per_sec}/s for {args.seconds:.0f} s, "
          f"starvation {args.starvation_secs} s")
    print(f"{'tier':<11} {'started':>8} {'p50 wait':>9} {'p95 wait':>9} {'max wait':>9}")
    for tier, w in waits.items():
        if w:
            print(f"{tier:<11} {len(w):>8} {statistics.median(w):>8.2f}s "
                  f"{percentile(w, 95):>8.2f}s {max(w):>8.2f}s")
    # Dispatch shares while the enterprise stream ran (both tiers had work then).
    window = [p.split("-")[0] for p, at in started if begin + 5 <= at <= begin + args.seconds]
    if window:
        free_share = window.count("free") / len(window)
        print(f"dispatches from 5 s to {args.seconds:.0f} s: {len(window)}, "
              f"free {free_share:.1%}, enterprise {1 - free_share:.1%}")
    print(f"enterprise answers: {ent_ok}/{ent_sent} with 200; elapsed {end - begin:.1f} s")


if __name__ == "__main__":
    main()
