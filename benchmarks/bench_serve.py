"""Load test of ``hybridml serve``: dynamic batching on vs off, 1 / 8 / 32 clients.

Bounded: every setting sends a fixed number of one-row requests from local
client threads to a server on 127.0.0.1, then stops. For each mode (batching on:
``--max-batch 64 --max-wait-ms 5``; off: ``--max-batch 1``) a fresh server runs
in its own subprocess; each client count first sends an untimed warm-up of
``2 x clients`` requests, then ``--requests`` timed ones. Printed: requests per
second, p50 / p99 latency, the mean rows per model call (from ``/metrics``),
failed requests, and mixed-up ones: every answer (label and class
probabilities) is checked, after the timed window, against the prediction for
its own row computed offline, by ``HybridModel.predict_proba`` in another
process, before the test. The clients are light (``http.client``, one
keep-alive connection each) since they share the server's cores; the CPU
each side used per request is printed.

The model: ``--model PATH`` (a classifier saved by ``--save-best``; its first
text column is filled from Rotten Tomatoes), or, by default, MiniLM +
logistic regression refitted on 400 Rotten Tomatoes rows (built once, in a
subprocess, under ``--work``). The test rows are the other 3,600 snippets
whose offline probabilities differ pairwise by more than 0.01 (bfloat16 answers
move by up to about 2e-3 with the batch they come in), so a swap cannot pass.

Each mode's server runs ``--rounds`` times (default 3), the order of the
modes alternated; the summary gives medians with [min-max] over the rounds,
and the on / off ratio of each round (so a slow spell of the machine lands on
both sides of it), and writes ``docs/benchmarks/serve.json``.

Full run (the lead, on a quiet machine)::

    python benchmarks/bench_serve.py --requests 640

Smoke (seconds, results meaningless)::

    python benchmarks/bench_serve.py --requests 8 --clients 1,2 --rounds 1

Targets (issue 23): at 32 clients, batching on gives >= 4x the requests per
second of batching off and p99 < 1 s on 2 cores; 0 failed, 0 mixed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _harness as H

HERE = Path(__file__).resolve().parent
TRAIN_ROWS = 400
TEST_ROWS = 256
MODES = {"on": ["--max-batch", "64", "--max-wait-ms", "5"], "off": ["--max-batch", "1"]}


def main() -> None:
    args = _parse()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_serve_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"cpu: {H.cpu_model()}; {H.CORES} cores")
    print(f"bf16 units: {_bf16_units() or 'none'}")
    before = H.uptime()
    print(f"uptime before: {before}")
    model = Path(args.model) if args.model else work / "minilm_logreg.hml"
    rows_file = work / "expected.json"
    if not args.model and not model.exists():
        _child(["--build", str(model)], "build the MiniLM + logreg model")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    expected = json.loads(rows_file.read_text()) if rows_file.exists() else {}
    if expected.get("model_sha256") != digest:  # else: made for this very file
        _child(["--expect", str(model), str(rows_file)], "offline predictions")
        expected = json.loads(rows_file.read_text())
    print(
        f"model: {model} ({expected['about']}); {len(expected['rows'])} test rows "
        f"with distinct probabilities; {args.requests} timed requests per setting"
    )
    clients = [int(c) for c in args.clients.split(",")]
    modes, results = args.modes.split(","), []
    for round_ in range(args.rounds):
        for mode in modes if round_ % 2 == 0 else modes[::-1]:  # alternated
            flags = MODES[mode]
            if mode == "on":
                flags = ["--max-batch", str(args.max_batch), "--max-wait-ms",
                         str(args.max_wait_ms)]  # fmt: skip
            with _server(model, flags, args.threads) as server:
                for n in clients:
                    result = _load(server, mode, n, args.requests, expected)
                    results.append({**result, "round": round_})
                    _print(results[-1])
    after = H.uptime()
    print(f"uptime after: {after}")
    _summary(results, args, f"before: {before}; after: {after}")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a saved classifier (.hml); default: build one")
    p.add_argument("--work", help="folder for the built model (kept; reused)")
    p.add_argument("--requests", type=int, default=320, help="timed, per setting")
    p.add_argument("--clients", default="1,8,32", help="client thread counts")
    p.add_argument("--modes", default="off,on", help="batching modes: off,on")
    p.add_argument("--threads", type=int, default=H.CORES, help="server threads")
    p.add_argument(
        "--rounds", type=int, default=3,
        help="each mode's server this many times, the order alternated",
    )  # fmt: skip
    p.add_argument("--max-batch", type=int, default=64, help="batching on: rows")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="batching on: wait")
    p.add_argument("--build", help=argparse.SUPPRESS)
    p.add_argument("--expect", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.build:
        _build(Path(args.build))
        sys.exit(0)
    if args.expect:
        _expect(Path(args.expect[0]), Path(args.expect[1]))
        sys.exit(0)
    if args.requests < 1:
        p.error(f"--requests: got {args.requests}. Expected >= 1.")
    if args.rounds < 1:
        p.error(f"--rounds: got {args.rounds}. Expected >= 1.")
    return args


# -- the model and the expected answers (children: keras stays out of here) ---


def _child(argv: list[str], what: str) -> None:
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, *argv], check=True)
    print(f"{what}: {time.perf_counter() - start:.0f} s")


def _build(path: Path) -> None:
    from hybridml.baseline.finalize import finalize
    from hybridml.baseline.run import run_steps
    from hybridml.baseline.saved import save_model
    from hybridml.datasets import load_rotten_tomatoes

    train = load_rotten_tomatoes().iloc[:TRAIN_ROWS]
    session = run_steps(
        train, target="label", text="text", backbones=["all_minilm_l6_v2_en"],
        heads="logreg", cv=2, stack=0, image=(), tabular=None, groups=None,
        metric=None, task="auto", limit=None, random_state=0, n_jobs=None,
        tune=False,
    )  # fmt: skip
    board = session.board
    deep = int(board.loc[board["kind"] == "deep", "rank"].iloc[0])
    save_model(finalize(session, deep), path)


def _expect(model_path: Path, out: Path) -> None:
    import numpy as np

    from hybridml import load_model
    from hybridml.datasets import load_rotten_tomatoes

    model = load_model(model_path)
    if model.task != "classification" or not model.roles["text"]:
        raise SystemExit(
            f"--model: got a {model.task} model with text columns "
            f"{model.roles['text']}. Expected a classifier with a text column."
        )
    texts = load_rotten_tomatoes()["text"].iloc[TRAIN_ROWS:].tolist()[: TEST_ROWS * 2]
    col = model.roles["text"][0]
    frame = _frame(model, col, texts)
    proba = model.predict_proba(frame).to_numpy()
    labels = model.predict(frame)
    keep, seen = [], []
    for i, p in enumerate(proba):  # rows far apart (> 1e-2): a swap cannot pass
        if all(abs(p[-1] - q) > 1e-2 for q in seen):
            keep.append(i)
            seen.append(p[-1])
        if len(keep) == TEST_ROWS:
            break
    rows = [
        {
            "row": {k: _plain(v) for k, v in frame.iloc[i].items()},
            "label": _plain(labels[i]),
            "proba": {
                str(c): float(p) for c, p in zip(model.classes, proba[i], strict=True)
            },
        }
        for i in keep
    ]
    about = f"{model.row.get('features')} + {model.row.get('head')}"
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    out.write_text(json.dumps({"about": about, "rows": rows, "model_sha256": digest}))
    assert np.isfinite(proba).all()


def _frame(model, col: str, texts: list[str]):
    import pandas as pd

    frame = pd.DataFrame({col: texts})
    for c in model.roles["numeric"]:
        frame[c] = 0.0
    for c in model.roles["categorical"]:
        frame[c] = ""
    return frame[model.columns]


def _plain(value):
    return value.item() if hasattr(value, "item") else value


# -- the server and the clients ----------------------------------------------


class _server:
    """``hybridml serve`` in its own process, on a free port, until closed."""

    def __init__(self, model: Path, options: list[str], threads: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "hybridml", "serve", str(model), "--port",
               str(port), *options]  # fmt: skip
        env = {**os.environ, **H.thread_env(threads)}
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)

    def cpu_seconds(self) -> float:
        """The server process's CPU-seconds so far (all its threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> _server:
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"server exited:\n{self.log.read().decode()}")
            try:
                if httpx.get(self.base + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit("server: not ready within 300 s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _load(server, mode: str, clients: int, requests: int, expected: dict) -> dict:
    import httpx

    base, rows = server.base, expected["rows"]
    _send_all(base, clients, 2 * clients, rows, offset=len(rows) // 2)  # untimed
    before = _batch_counts(httpx.get(base + "/metrics").text)
    load_before, started = os.getloadavg()[0], time.time()
    busy0, server0, client0 = H.busy_jiffies(), server.cpu_seconds(), H.cpu_seconds()
    start = time.perf_counter()
    out = _send_all(base, clients, requests, rows, offset=0)
    wall = time.perf_counter() - start
    busy1, server1, client1 = H.busy_jiffies(), server.cpu_seconds(), H.cpu_seconds()
    ours0, ours1 = server0 + client0, server1 + client1
    after = _batch_counts(httpx.get(base + "/metrics").text)
    calls = after[0] - before[0]
    lat = sorted(out["latencies"])
    others = (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - (ours1 - ours0)
    return {
        "started": started,
        "load_before": load_before,
        "others_cores": max(0.0, others) / wall,
        "mode": mode,
        "clients": clients,
        "requests": requests,
        "failed": out["failed"],
        "mixed": out["mixed"],
        "max_dev": out["max_dev"],
        "label_diff": out["label_diff"],
        "rps": len(lat) / wall if wall else float("nan"),
        "server_cpu_ms": 1000 * (server1 - server0) / requests,
        "client_cpu_ms": 1000 * (client1 - client0) / requests,
        "p50": _quantile(lat, 0.5),
        "p99": _quantile(lat, 0.99),
        "rows_per_call": (after[1] - before[1]) / calls if calls else float("nan"),
    }


def _send_all(base, clients, requests, rows, offset) -> dict:
    """``requests`` one-row requests from ``clients`` threads; checked afterwards.

    Each client holds one keep-alive connection (``http.client``: a light
    client, since it shares the server's cores) and only records the answers;
    they are compared with the offline predictions after the timed window.
    """
    import http.client
    from urllib.parse import urlsplit

    host = urlsplit(base)
    lock, counter, answers = threading.Lock(), iter(range(requests)), []

    def client() -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                want = rows[(offset + i) % len(rows)]
                body = json.dumps([want["row"]])
                start = time.perf_counter()
                try:
                    conn.request("POST", "/predict?proba=true", body, headers)
                    r = conn.getresponse()
                    status, raw = r.status, r.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnects on the next request
                    status, raw = None, json.dumps({"detail": repr(exc)}).encode()
                answers.append((time.perf_counter() - start, status, raw, want))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _check(answers, rows)


def _check(answers: list, rows: list) -> dict:
    out = {"latencies": [], "failed": 0, "mixed": 0, "errors": [], "max_dev": 0.0,
           "label_diff": 0}  # fmt: skip
    for seconds, status, raw, want in answers:
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"detail": raw[:200].decode(errors="replace")}
        if status != 200:
            out["failed"] += 1
            out["errors"].append(body.get("detail"))
            continue
        out["latencies"].append(seconds)
        mixed, dev, label_diff = _compare(body, want, rows)
        out["mixed"] += mixed
        out["label_diff"] += label_diff
        out["max_dev"] = max(out["max_dev"], dev)
    for error in out["errors"][:3]:
        print(f"  failed: {error}")
    return out


def _compare(body: dict, want: dict, rows: list) -> tuple[int, float, int]:
    """(mixed up, |p - offline| of its own row, label differs from offline).

    Mixed up: the answer is nearer another row's offline probabilities than
    its own (the test rows differ pairwise by > 1e-2). A small
    deviation from the offline, batched prediction is not a mix-up: it is the
    precision of the backbone's dtype, reported as the largest |p - offline|.
    """
    got = body["proba"][0]

    def distance(row: dict) -> float:
        return max(abs(got[c] - p) for c, p in row["proba"].items())

    own = distance(want)
    nearest = min(rows, key=distance)
    mixed = int(nearest is not want and distance(nearest) < own)
    return mixed, own, int(body.get("predictions") != [want["label"]])


def _batch_counts(text: str) -> tuple[float, float]:
    values = dict(re.findall(r"^(hybridml_serve_batch_rows_(?:count|sum)) (\S+)$",
                             text, re.M))  # fmt: skip
    return (
        float(values["hybridml_serve_batch_rows_count"]),
        float(values["hybridml_serve_batch_rows_sum"]),
    )


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def _bf16_units() -> str:
    try:
        found = subprocess.run(
            ["grep", "-o", r"amx_bf16\|avx512_bf16", "/proc/cpuinfo"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
    except OSError:
        return "unknown"
    return ", ".join(f"{u} x{found.count(u)}" for u in sorted(set(found)))


def _print(r: dict) -> None:
    print(
        f"batching {r['mode']:>3}, {r['clients']:>2} clients: {r['rps']:7.1f} req/s, "
        f"p50 {1000 * r['p50']:7.1f} ms, p99 {1000 * r['p99']:7.1f} ms, "
        f"{r['rows_per_call']:5.1f} rows per model call; CPU-ms per request: "
        f"server {r['server_cpu_ms']:.1f}, clients {r['client_cpu_ms']:.1f}; "
        f"{r['failed']} failed, "
        f"{r['mixed']} mixed up (of {r['requests']}); max |p - offline| "
        f"{r['max_dev']:.1e}, {r['label_diff']} labels unlike offline; other processes "
        f"{r['others_cores']:.2f} cores, load before {r['load_before']:.2f}",
        flush=True,
    )


def _summary(results: list[dict], args: argparse.Namespace, load: str) -> None:
    """Medians over the rounds, [min-max]; on / off from the same round."""
    bad = sum(r["failed"] + r["mixed"] for r in results)
    print(f"failed + mixed up, all settings: {bad}")
    busy = H.busy_reason(results)
    if busy:
        print(f"no ratios: the machine was busy ({busy}); rerun on a quiet one")
        return
    rows = []
    for n in sorted({r["clients"] for r in results}):
        runs = {m: [r for r in results if r["mode"] == m and r["clients"] == n]
                for m in ("off", "on")}  # fmt: skip
        for mode, rs in runs.items():
            if rs:
                rows.append([
                    n, mode, _spread([r["rps"] for r in rs], "{:.1f}"),
                    _spread([1000 * r["p50"] for r in rs], "{:.0f}"),
                    _spread([1000 * r["p99"] for r in rs], "{:.0f}"),
                    f"{statistics.median(r['rows_per_call'] for r in rs):.1f}",
                    f"{statistics.median(r['server_cpu_ms'] for r in rs):.1f}",
                    sum(r["failed"] + r["mixed"] for r in rs), "",
                ])  # fmt: skip
        rounds = {r["round"] for r in runs["on"]} & {r["round"] for r in runs["off"]}
        if rounds:
            rps = {
                (r["mode"], r["round"]): r["rps"] for rs in runs.values() for r in rs
            }
            ratios = [rps["on", k] / rps["off", k] for k in sorted(rounds)]
            p99 = statistics.median(1000 * r["p99"] for r in runs["on"])
            print(f"{n} clients: batching on / off = {_spread(ratios, '{:.2f}')}x "
                  f"req/s (median [min-max] of {len(ratios)} rounds, each on "
                  f"over the off of its round); p99 on {p99:.0f} ms")  # fmt: skip
            rows[-1][-1] = _spread(ratios, "{:.2f}x")  # on's row
    path = H.write_results(
        "serve",
        title="hybridml serve: dynamic batching on vs off (MiniLM + logistic "
        "regression)",
        columns=[
            "clients",
            "batching",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "rows per call",
            "server CPU-ms per request",
            "failed + mixed up",
            "on / off",
        ],
        rows=rows,
        load=load,
        notes=(
            f"{args.requests} one-row text requests per setting from local client "
            f"threads (keep-alive), after a warm-up; each mode's server a fresh "
            f"process, {args.rounds} rounds with the order of the modes "
            f"alternated; {args.threads} server threads; on = --max-batch "
            f"{args.max_batch} --max-wait-ms {args.max_wait_ms:g}, off = --max-batch "
            "1. Cells: median [min-max] over the rounds; on / off is the median "
            "of each round's ratio. Every answer checked against the offline "
            "prediction of its own row."
        ),
        plot={
            "labels": [0, 1],
            "series": [{"column": 2, "name": "requests/s"}],
            "xlabel": "requests/s",
        },
    )
    print(f"written: {path}")


def _spread(values: list[float], fmt: str) -> str:
    """``median [min-max]`` (just the value when there is one)."""
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


if __name__ == "__main__":
    main()
