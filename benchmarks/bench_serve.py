"""`make bench-serve`: `srfer serve` under load, on 127.0.0.1 only, for a fixed time per level.

Starts one server (`--threads` inference threads, `--queue` waiting), then posts one photo to
`/v1/analyze` from 1, 4 and 16 concurrent clients, each level for `--seconds`: requests/s,
latency p50/p95/p99 of the answered requests, errors (503s from a full queue counted apart;
a client told 503 waits its Retry-After, as a well-behaved one does),
and the server's resident memory at start and end. For comparison, `srfer predict` run once
per image (a process each: torch import and model load every time). Numbers are measured
each run, never stored.

    python benchmarks/bench_serve.py --photo examples/astronaut_small.png --seconds 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serving import Server  # noqa: E402  (the tests' helper: a server on a free port)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def level(url: str, photo: Path, clients: int, seconds: float) -> dict:
    files = {"image": (photo.name, photo.read_bytes(), "image/png")}
    latencies: list[float] = []
    statuses: list[int] = []
    lock, stop = threading.Lock(), time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=120) as session:
            while time.monotonic() < stop:
                start = time.perf_counter()
                response = session.post(f"{url}/v1/analyze", files=files)
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - start)
                if response.status_code == 503:  # a well-behaved client waits as told
                    time.sleep(float(response.headers.get("retry-after", "1")))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    begun = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - begun
    q = (
        [v * 1000 for v in statistics.quantiles(latencies, n=100)]
        if len(latencies) > 1
        else [float("nan")] * 99
    )
    return {"clients": clients, "requests_per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1), "p99_ms": round(q[98], 1),
            "answered": len(latencies), "busy_503": statuses.count(503),
            "errors": sum(s not in (200, 503) for s in statuses)}  # fmt: skip


def predict_per_image(photo: Path, runs: int) -> float:
    """Seconds per image when each image is its own `srfer predict` process."""
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run([sys.executable, "-m", "srfer", "predict", str(photo), "--json"], check=True,
                       capture_output=True)  # fmt: skip
    return (time.perf_counter() - start) / runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photo", type=Path, default=Path("examples/astronaut_small.png"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--predict-runs", type=int, default=3)
    args = parser.parse_args()
    server = Server("--threads", str(args.threads), "--queue", str(args.queue)).wait()
    try:
        report = {"photo": str(args.photo), "seconds_per_level": args.seconds,
                  "rss_mb_start": round(rss_mb(server.process.pid), 1), "levels": []}  # fmt: skip
        for clients in (int(c) for c in args.levels.split(",")):
            report["levels"].append(level(server.url, args.photo, clients, args.seconds))
            print(json.dumps(report["levels"][-1]), flush=True)
        report["rss_mb_end"] = round(rss_mb(server.process.pid), 1)
    finally:
        server.stop()
    seconds = predict_per_image(args.photo, args.predict_runs)
    report["srfer_predict_per_image"] = {
        "seconds": round(seconds, 2),
        "requests_per_s": round(1 / seconds, 3),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
