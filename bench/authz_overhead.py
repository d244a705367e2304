"""What nginx's auth_request to Warden adds to an API call, through a real nginx.

Same run, interleaved: POST /plain/api/v3/post (auth_request off) and
POST /api/v3/post (auth_request to Warden, token cached) both proxy to a
static upstream (an nginx `return 200`). Prints p50/p99 of both and the
difference. Target: p99 difference <= 3 ms on 2 cores.

    .venv/bin/python bench/authz_overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers.edge import Edge
from tests.servers.lemmy_double import lemmy_jwt

RULES = """\
[rules.create_post]
all = ["account_age >= 1d", "comments >= 1"]
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        edge = Edge.start(Path(tmp), "v3", RULES, static=True)
        try:
            edge.lemmy.add_user("tok", "veteran", timedelta(days=100), comments=10)
            headers = {"Authorization": f"Bearer {lemmy_jwt('tok')}"}  # only JWTs are looked up
            timings: dict[str, list[float]] = {"plain": [], "authz": []}
            paths = {"plain": "/plain/api/v3/post", "authz": "/api/v3/post"}
            with httpx.Client(base_url=edge.url, headers=headers) as client:
                for name, path in paths.items():  # warm up: connections, identity cache
                    for _ in range(50):
                        assert client.post(path, content=b"{}").status_code == 200, name
                for _ in range(args.requests):
                    for name, path in paths.items():
                        start = time.perf_counter()
                        response = client.post(path, content=b"{}")
                        timings[name].append((time.perf_counter() - start) * 1000)
                        assert response.status_code == 200, response.text
            assert edge.lemmy.identity_calls == 1, "the identity cache was not warm"
        finally:
            edge.stop()
    print(f"requests per variant: {args.requests}, sequential, keep-alive, loopback")
    row = "{:<28} p50 {:7.3f} ms   p99 {:7.3f} ms   mean {:7.3f} ms"
    for name, label in (("plain", "without auth_request"), ("authz", "with auth_request (Warden)")):
        t = timings[name]
        print(row.format(label, percentile(t, 0.5), percentile(t, 0.99), statistics.fmean(t)))
    d50 = percentile(timings["authz"], 0.5) - percentile(timings["plain"], 0.5)
    d99 = percentile(timings["authz"], 0.99) - percentile(timings["plain"], 0.99)
    print(
        f"difference                   p50 {d50:7.3f} ms   p99 {d99:7.3f} ms   (target p99 <= 3 ms)"
    )


if __name__ == "__main__":
    main()
