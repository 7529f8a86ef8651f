"""``faceptor serve`` under load: N concurrent HTTP clients (httpx, one connection each) upload real photos;
throughput and p50 / p99 latency with dynamic batching against one photo per model pass (``--max-batch 1``,
the baseline), then the server's memory (RSS from /proc) over many requests while one more client sends
garbage. Random weights (speed does not depend on them).

    python benchmarks/bench_serve.py                                  # vit_t16, every task at 112 px
    python benchmarks/bench_serve.py --clients 16 --requests 6 --memory-requests 300 --save
    python benchmarks/bench_serve.py --encoder farl_vit_b16 --requests 2

Each client sends its photos one after another (a request waits for the previous answer). Photos: scikit-image's
astronaut and crops / flips / rescalings of it (one face each, found by YuNet), as JPEG.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["landmarks_300w", "age_morph2", "expression_rafdb", "attributes_celeba", "recognition_ms1mv3"]


def photos() -> list[bytes]:
    import skimage.data
    from PIL import Image

    astro = Image.fromarray(skimage.data.astronaut())
    variants = [
        astro,
        astro.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        astro.crop((60, 0, 400, 340)),
        astro.resize((384, 384)),
        astro.crop((100, 20, 356, 276)).resize((320, 320)),
        astro.rotate(8, fillcolor=(128, 128, 128)),
    ]
    out = []
    for im in variants:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(checkpoint: str, *args: str):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log = tempfile.TemporaryFile()  # noqa: SIM115 (read after the server ends)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faceptor_core.cli",
            "serve",
            checkpoint,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"server exited: {log.read().decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def metric(base: str, name: str) -> float:
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


BATCH_COUNTERS = ("faceptor_batch_size_photos_count", "faceptor_batch_size_photos_sum", "faceptor_batch_seconds_sum")


def batch_counters(base: str) -> list[float]:
    """The server's batch counters now (passes, photos in them, seconds spent)."""
    return [metric(base, name) for name in BATCH_COUNTERS]


def batch_stats(base: str, before: list[float], lat: np.ndarray) -> dict[str, float]:
    """Latency percentiles of ``lat`` (seconds) and the passes the server ran since ``before``."""
    passes, photos, seconds = (now - then for now, then in zip(batch_counters(base), before, strict=True))
    return {
        "requests": len(lat),
        "p50_ms": 1000 * float(np.percentile(lat, 50)),
        "p99_ms": 1000 * float(np.percentile(lat, 99)),
        "mean_batch": photos / max(passes, 1),
        "batch_ms": 1000 * seconds / max(passes, 1),
    }


def post_photo(client: httpx.Client, pic: bytes) -> None:
    """Upload one photo (all tasks, no embeddings in the answer); a failed request ends the benchmark."""
    r = client.post("/v1/analyze/upload", files=[("photo", ("p.jpg", pic, "image/jpeg"))], data={"embeddings": "false"})
    if r.status_code != 200:
        raise SystemExit(f"request failed: {r.status_code} {r.text[:300]}")


def load(base: str, clients: int, requests: int, pics: list[bytes]) -> dict[str, float]:
    """``clients`` threads, each sending ``requests`` photos in turn; latencies of every request."""
    barrier = threading.Barrier(clients)

    def client(k: int) -> list[float]:
        out = []
        with httpx.Client(base_url=base, timeout=600) as c:
            barrier.wait()
            for i in range(requests):
                pic = pics[(k + i) % len(pics)]
                t0 = time.perf_counter()
                post_photo(c, pic)
                out.append(time.perf_counter() - t0)
        return out

    before = batch_counters(base)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = np.concatenate([np.asarray(x) for x in pool.map(client, range(clients))])
    wall = time.perf_counter() - t0
    return {"seconds": wall, "throughput": len(lat) / wall, **batch_stats(base, before, lat)}


def open_loop(base: str, rate: float, seconds: float, clients: int, pics: list[bytes]) -> dict[str, float]:
    """Requests arriving at ``rate`` per second (Poisson), sent by up to ``clients`` connections: latency below
    saturation, where a request waits for at most the batch being computed and its own."""
    rng = np.random.default_rng(0)
    starts = np.cumsum(rng.exponential(1 / rate, size=int(rate * seconds * 2)))
    starts = starts[starts < seconds]
    local, opened = threading.local(), []

    def send(k: int) -> float:
        delay = starts[k] - (time.perf_counter() - t0)
        if delay > 0:
            time.sleep(delay)
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=600)
            opened.append(local.client)
        t1 = time.perf_counter()
        post_photo(local.client, pics[k % len(pics)])
        return time.perf_counter() - t1

    before = batch_counters(base)
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(clients) as pool:
            lat = np.asarray(list(pool.map(send, range(len(starts)))))
    finally:
        for c in opened:
            c.close()
    return {"rate": rate, **batch_stats(base, before, lat)}


def no_face_photos() -> list[bytes]:
    """scikit-image's ``coffee`` and ``chelsea`` (a cat) as JPEG: YuNet finds no face in them."""
    import skimage.data
    from PIL import Image

    out = []
    for arr in (skimage.data.coffee(), skimage.data.chelsea()):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def memory(base: str, pid: int, n: int, clients: int, pics: list[bytes]) -> dict[str, object]:
    """RSS every n/10 requests (``clients`` clients, age only) while one client sends garbage. ``pics`` may mix
    photos without a face (detection only) with face photos, so that many requests fit in a few minutes."""
    stop, garbage = threading.Event(), {"sent": 0, "5xx": 0}

    def junk() -> None:
        bodies = [b"not an image", b"", os.urandom(4096), b"\xff\xd8\xff" + os.urandom(2000)]
        with httpx.Client(base_url=base, timeout=60) as c:
            while not stop.is_set():
                body = bodies[garbage["sent"] % len(bodies)]
                r = c.post("/v1/analyze/upload", files=[("photo", ("x.jpg", body, "image/jpeg"))])
                garbage["sent"] += 1
                garbage["5xx"] += r.status_code >= 500
                r = c.post(
                    "/v1/analyze", content=b'{"photos": [{"data": "%%%"}', headers={"content-type": "application/json"}
                )
                garbage["5xx"] += r.status_code >= 500

    done, rss, lock = [0], [(0, rss_mib(pid))], threading.Lock()
    step = max(1, n // 10)

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=600) as c:
            while True:
                with lock:
                    if done[0] >= n:
                        return
                    done[0] += 1
                    i = done[0]
                r = c.post(
                    "/v1/analyze/upload",
                    files=[("photo", ("p.jpg", pics[i % len(pics)], "image/jpeg"))],
                    data={"tasks": "age_morph2"},
                )
                if r.status_code != 200:
                    raise SystemExit(f"request failed: {r.status_code} {r.text[:300]}")
                if i % step == 0:
                    rss.append((i, rss_mib(pid)))

    g = threading.Thread(target=junk)
    g.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
    finally:
        stop.set()
        g.join()
    return {"rss_mib": sorted(rss), "garbage_requests": 2 * garbage["sent"], "garbage_5xx": garbage["5xx"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="vit_t16")
    ap.add_argument("--size", type=int, default=112, help="input size of every task (default: 112)")
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=4, help="requests per client in each load test")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=20.0)
    ap.add_argument("--memory-requests", type=int, default=200, help="requests of the memory test (0: skip)")
    ap.add_argument(
        "--memory-face-every",
        type=int,
        default=1,
        help="in the memory test, one photo in K has a face, the others none (default: 1, all faces)",
    )
    ap.add_argument("--skip-load", action="store_true", help="only the memory test")
    ap.add_argument(
        "--open-rate",
        type=float,
        default=0.0,
        help="also send requests arriving at this rate per second (Poisson, for 60 s) to measure "
        "latency below saturation (default: 0, skip)",
    )
    ap.add_argument("--save", action="store_true", help="write benchmarks/results/serve_<encoder>.json")
    args = ap.parse_args()

    import torch

    import faceptor_core

    torch.manual_seed(0)
    pics = photos()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(Path(tmp) / "ckpt")
        faceptor_core.build(args.tasks, encoder=args.encoder, input_sizes=args.size).save_pretrained(ckpt)
        rows = {}
        for label, batch in () if args.skip_load else (("dynamic batching", args.max_batch), ("one photo per pass", 1)):
            with server(ckpt, "--max-batch", str(batch), "--max-wait-ms", str(args.max_wait_ms)) as (base, _):
                load(base, 2, 1, pics)  # warm-up
                rows[label] = load(base, args.clients, args.requests, pics)
                print(label, json.dumps({k: round(v, 2) for k, v in rows[label].items()}), flush=True)
        if args.open_rate:
            with server(ckpt, "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)) as (base, _):
                load(base, 2, 1, pics)
                rows["open loop"] = open_loop(base, args.open_rate, 60.0, args.clients, pics)
                print("open loop", json.dumps({k: round(v, 2) for k, v in rows["open loop"].items()}), flush=True)
        mem = None
        if args.memory_requests:
            with server(ckpt, "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)) as (
                base,
                pid,
            ):
                load(base, 2, 1, pics)
                k = args.memory_face_every
                empty = no_face_photos()
                mix = [
                    pics[(i // k) % len(pics)] if i % k == 0 else empty[i % len(empty)] for i in range(k * len(pics))
                ]
                t0 = time.perf_counter()
                mem = memory(base, pid, args.memory_requests, args.clients, mix)
                mem["seconds"] = time.perf_counter() - t0
                mem["face_every"] = k
                print("memory", json.dumps(mem), flush=True)
    setup = (
        f"encoder {args.encoder}, {len(args.tasks)} tasks at {args.size} px, {args.clients} clients x "
        f"{args.requests} requests, --max-wait-ms {args.max_wait_ms:g}, {os.cpu_count()} CPUs, "
        f"torch {torch.get_num_threads()} threads"
    )
    print(f"\n{setup}\n")
    print("| server | requests | req/s | p50 ms | p99 ms | photos per pass | ms per pass |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in rows.items():
        if label == "open loop":
            continue
        print(
            f"| {label} | {r['requests']} | {r['throughput']:.2f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{r['mean_batch']:.1f} | {r['batch_ms']:.0f} |"
        )
    if "open loop" in rows:
        r = rows["open loop"]
        bound = 2 * args.max_wait_ms + r["batch_ms"]
        print(
            f"\nopen loop at {r['rate']:g} requests/s: p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms; "
            f"2 x window + one batch's compute = {bound:.0f} ms (mean batch {r['mean_batch']:.1f} photos)"
        )
    if "one photo per pass" in rows:
        base = rows["one photo per pass"]["throughput"]
        print(f"\nthroughput: {rows['dynamic batching']['throughput'] / base:.2f}x that of one photo per pass")
    if mem:
        print("RSS MiB after n requests: " + ", ".join(f"{n}: {m:.0f}" for n, m in mem["rss_mib"]))
        print(f"garbage requests meanwhile: {mem['garbage_requests']}, answered 5xx: {mem['garbage_5xx']}")
    if args.save:
        name = (
            f"serve_{args.encoder}"
            + ("_memory" if args.skip_load and not args.open_rate else "")
            + ("_open" if args.open_rate and args.skip_load else "")
        )
        out = ROOT / "benchmarks" / "results" / f"{name}.json"
        out.write_text(json.dumps({"setup": setup, "load": rows, "memory": mem}, indent=1))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
