"""Fleet simulation: 1000 OTA agents in one process against one local manifest server.

Part 1, manifest polling (real HTTP on 127.0.0.1). One manifest server runs in a child
process (its own GIL, ThreadingHTTPServer, backlog 1024) and timestamps every request.
1000 asyncio agents in this process each poll once within one poll period (300 s,
time-compressed to ``--period-real`` seconds), download the signed manifest, verify its
ed25519 signature and decide with the real OTA code. Schedules:

- ``no jitter``: every agent polls at the same instant (a fleet that boots together, or
  fixed timers). This is the baseline.
- ``interval jitter +-30 s``: synchronised start, then each wait is 300 +- 30 s, so the
  second poll spreads over 60 s.
- ``startup jitter [0, 300 s]`` (the default config): the first poll is uniform over the
  period, which keeps the fleet spread out for good.

Figures: peak requests per (simulated) second at the server, in a sliding 1 s window
(real 1 s for the burst, which no time scale changes), client latency p50 / p99,
errors; ratio = burst peak / peak with jitter.

Part 2, staged rollout (simulated clock, the real cohort function): stages 1 %, 10 %,
50 %, 100 % promoted after ``--soak-periods`` poll periods each, against one stage at
100 % as the baseline. Figures: time until every device of each stage is updated, total
rollout time, and the peak updates started per second (the load on the git server).

Usage: ``.venv/bin/python bench/bench_ota_fleet.py [--quick] [--agents 1000]``.
Results also go to bench/results/ota_fleet.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import multiprocessing
import os
import random
import sys
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from pianist_ros.ota.errors import OtaError  # noqa: E402
from pianist_ros.ota.manifest import build_signed  # noqa: E402
from pianist_ros.ota.manifest import cohort_bucket  # noqa: E402
from pianist_ros.ota.manifest import generate_private_key  # noqa: E402
from pianist_ros.ota.manifest import sign  # noqa: E402
from pianist_ros.ota.manifest import verify  # noqa: E402
from pianist_ros.ota.versions import decide  # noqa: E402

PERIOD = 300.0
JITTER = 30.0
MAX_BODY = 65536


# ---- the manifest server (child process) ---------------------------------------------

def _serve(port_queue, body: bytes) -> None:
    arrivals: list[float] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.0'

        def do_GET(self):  # noqa: N802 - http.server API
            if self.path == '/__stats':
                data = json.dumps(arrivals).encode()
                arrivals.clear()
            else:
                arrivals.append(time.time())
                data = body
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

    server = Server(('127.0.0.1', 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def start_server(body: bytes) -> tuple[multiprocessing.Process, int]:
    """Start the manifest server in a child process; return it and its port."""
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(queue, body), daemon=True)
    proc.start()
    return proc, queue.get(timeout=30)


def server_arrivals(port: int) -> list[float]:
    """Fetch (and reset) the server's arrival timestamps."""
    with urllib.request.urlopen(f'http://127.0.0.1:{port}/__stats', timeout=30) as resp:
        return json.loads(resp.read())


# ---- the agents ----------------------------------------------------------------------

async def _read_capped(reader: asyncio.StreamReader) -> bytes:
    chunks, size = [], 0
    while size <= MAX_BODY + 4096:
        chunk = await reader.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b''.join(chunks)


async def agent(port: int, due: float, public_key, current: str, results: list) -> None:
    """Poll once at ``due`` (loop time): GET, verify, decide; record latency or error."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, due - loop.time()))
    start = loop.time()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection('127.0.0.1', port), 10)
        writer.write(b'GET /manifest.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n')
        await writer.drain()
        raw = await asyncio.wait_for(_read_capped(reader), 10)
        writer.close()
        head, _sep, body = raw.partition(b'\r\n\r\n')
        if not head.startswith(b'HTTP/1.0 200'):
            raise RuntimeError(head[:40])
        manifest = verify(body, public_key, time.time())
        decide(current, manifest.version)
        results.append(('ok', loop.time() - start))
    except (OSError, asyncio.TimeoutError, RuntimeError, ValueError, OtaError) as exc:
        results.append((type(exc).__name__, loop.time() - start))


async def run_fleet(port: int, offsets_real: list[float], public_key) -> list:
    """Run one agent per offset (seconds from now) and return their results."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5
    results: list = []
    await asyncio.gather(*(agent(port, t0 + off, public_key, '1.9.0', results)
                           for off in offsets_real))
    return results


def peak_in_window(times: list[float], window: float) -> int:
    """Return the most events in any window of ``window`` seconds (sliding)."""
    ts = np.sort(np.asarray(times))
    if ts.size == 0:
        return 0
    ends = np.searchsorted(ts, ts + window, side='left')
    return int((ends - np.arange(ts.size)).max())


def polling(args) -> list[dict]:
    """Part 1: run the three schedules against one server and return their figures."""
    key = generate_private_key()
    now = time.time()
    body = json.dumps(sign(build_signed('1.10.0', 'a' * 40, 1, now, now + 86400), key)).encode()
    proc, port = start_server(body)
    scale = PERIOD / args.period_real
    rng = random.Random(7)
    schedules = [
        ('no jitter (baseline)', [0.0] * args.agents, True),
        ('interval jitter +-30 s', [rng.uniform(0, 2 * JITTER) for _ in range(args.agents)],
         False),
        ('startup jitter [0, 300 s]', [rng.uniform(0, PERIOD) for _ in range(args.agents)],
         False),
    ]
    rows = []
    try:
        for name, offsets_sim, burst in schedules:
            server_arrivals(port)
            start = time.time()
            results = asyncio.run(run_fleet(port, [o / scale for o in offsets_sim],
                                            key.public_key()))
            wall = time.time() - start
            arrivals = server_arrivals(port)
            # The burst is not slowed by the time scale (all are due at once): measure it
            # in real seconds. Scheduled polls: 1 simulated second = 1 / scale real.
            window = 1.0 if burst else 1.0 / scale
            offered = peak_in_window(offsets_sim, 1.0)
            lat = np.array([r[1] for r in results if r[0] == 'ok']) * 1000.0
            errors = len(results) - lat.size
            rows.append({
                'schedule': name, 'agents': args.agents, 'offered_peak_per_s': offered,
                'server_peak_per_s': peak_in_window(arrivals, window),
                'requests_at_server': len(arrivals), 'errors': errors,
                'latency_ms_p50': float(np.percentile(lat, 50)) if lat.size else None,
                'latency_ms_p99': float(np.percentile(lat, 99)) if lat.size else None,
                'arrival_spread_real_s': (max(arrivals) - min(arrivals)) if arrivals else 0,
                'wall_s': wall,
            })
    finally:
        proc.terminate()
        proc.join(10)
    return rows


# ---- staged rollout (simulated clock) --------------------------------------------------

def rollout(agents: int, stages: list[int], soak_periods: float, seed: int = 3) -> dict:
    """Return when each stage's devices are updated, with the real cohort function."""
    rng = np.random.default_rng(seed)
    horizon = int(len(stages) * (soak_periods + 2) + 4)
    first = rng.uniform(0, PERIOD, agents)
    waits = rng.uniform(PERIOD - JITTER, PERIOD + JITTER, (agents, horizon))
    polls = np.concatenate([first[:, None], first[:, None] + np.cumsum(waits, axis=1)], 1)
    buckets = np.array([cohort_bucket(f'jetson-{i:04d}', '1.10.0') for i in range(agents)])
    updated_at = np.full(agents, np.inf)
    stage_done = []
    published = 0.0
    for percent in stages:
        members = (buckets < percent) & np.isinf(updated_at)
        for i in np.flatnonzero(members):
            updated_at[i] = polls[i][np.searchsorted(polls[i], published)]
        done = updated_at[buckets < percent]
        stage_done.append({'percent': percent, 'devices': int(done.size),
                           'published_s': published,
                           'all_updated_s': float(done.max()) if done.size else published})
        published = stage_done[-1]['all_updated_s'] + soak_periods * PERIOD
    finite = updated_at[np.isfinite(updated_at)]
    return {'stages': stage_done, 'total_s': float(finite.max()),
            'updated': int(finite.size),
            'peak_updates_per_s': peak_in_window(list(finite), 1.0),
            'peak_updates_per_min': peak_in_window(list(finite), 60.0)}


def main() -> int:
    """Run both parts, print figures and ratios, and save the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='compress the poll period to 6 s instead of 30 s')
    parser.add_argument('--agents', type=int, default=1000)
    parser.add_argument('--period-real', type=float, default=None,
                        help='real seconds standing for one 300 s poll period')
    parser.add_argument('--soak-periods', type=float, default=2.0,
                        help='poll periods each rollout stage soaks before promotion')
    args = parser.parse_args()
    if args.period_real is None:
        args.period_real = 6.0 if args.quick else 30.0
    print(f'OTA fleet: {args.agents} agents, poll period {PERIOD:.0f} s simulated in '
          f'{args.period_real:g} s (x{PERIOD / args.period_real:g})')
    rows = polling(args)
    base = rows[0]['server_peak_per_s']
    print(f'{"schedule":28} {"offered/s":>9} {"server/s":>9} {"p50 ms":>8} {"p99 ms":>8} '
          f'{"errors":>6} {"vs baseline":>11}')
    for row in rows:
        ratio = base / row['server_peak_per_s'] if row['server_peak_per_s'] else float('inf')
        row['baseline_over_this'] = ratio
        print(f'{row["schedule"]:28} {row["offered_peak_per_s"]:9d} '
              f'{row["server_peak_per_s"]:9d} {row["latency_ms_p50"] or 0:8.1f} '
              f'{row["latency_ms_p99"] or 0:8.1f} {row["errors"]:6d} {ratio:10.1f}x')
    print(f'burst: {rows[0]["requests_at_server"]} requests arrived within '
          f'{rows[0]["arrival_spread_real_s"] * 1000:.0f} ms')
    staged = rollout(args.agents, [1, 10, 50, 100], args.soak_periods)
    single = rollout(args.agents, [100], args.soak_periods)
    print(f'\nstaged rollout 1/10/50/100 %, soak {args.soak_periods:g} periods per stage:')
    for stage in staged['stages']:
        print(f'  {stage["percent"]:3d} %: {stage["devices"]:4d} devices, published at '
              f'{stage["published_s"] / 60:6.1f} min, all updated by '
              f'{stage["all_updated_s"] / 60:6.1f} min')
    print(f'  total {staged["total_s"] / 60:.1f} min; peak {staged["peak_updates_per_min"]} '
          f'updates/min ({staged["peak_updates_per_s"]}/s)')
    print(f'single stage 100 % (baseline): total {single["total_s"] / 60:.1f} min; peak '
          f'{single["peak_updates_per_min"]} updates/min ({single["peak_updates_per_s"]}/s)')
    print(f'staged / single rollout time: {staged["total_s"] / single["total_s"]:.1f}x')
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    with open(os.path.join(HERE, 'results', 'ota_fleet.json'), 'w', encoding='utf-8') as fh:
        json.dump({'polling': rows, 'staged': staged, 'single': single,
                   'period_real_s': args.period_real}, fh, indent=1)
    errors = sum(r['errors'] for r in rows)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
