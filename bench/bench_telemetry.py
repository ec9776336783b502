"""Benchmark the telemetry bridge: /health latency under load and its cost to the detector.

Runs ``pianist-bringup`` on the shared clip (camera -> MediaPipe detector -> bridge,
one process, as on a device) and then, on loopback:

1. idle baseline: detector FPS with no HTTP load;
2. for 1, 10 and 100 concurrent clients: /health latency p50 / p99 / max and the
   detector FPS during the load, in two client models:
   - ``closed``: every client sends its next request as soon as the last one is
     answered (saturation: latency ~ clients / throughput);
   - ``paced``: every client polls at ``--rate`` Hz (probes, scrapers, dashboards);
3. idle baseline again (the clip's content changes the detector's speed, so the
   baseline is the mean of both idle phases).

Each request uses a new TCP connection, as Kubernetes probes and curl do. Detector
FPS comes from /health ``frames_processed`` (one request at each phase boundary).
Ratios: FPS under load / idle FPS (goal >= 0.97), p99 at N clients / p99 at 1.
Goals: p99 <= 10 ms at 100 clients. Results also go to bench/results/telemetry.json.

Usage: ``.venv/bin/python bench/bench_telemetry.py [--quick] [--rate 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'test'))
import data_location  # noqa: E402  (test/data_location.py)

DATA = data_location.hands_data(REPO) or os.path.join(REPO, '..', 'shared', 'data', 'hands')
CLIENTS = (1, 10, 100)
GOAL_P99_MS = 10.0
GOAL_FPS_RATIO = 0.97


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def get_health(port: int) -> dict:
    """Return the /health JSON (any status code)."""
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def start_stack(port: int, workdir: str) -> tuple[subprocess.Popen, str]:
    """Start pianist-bringup on the clip with the bridge on ``port``; return (proc, log)."""
    with open(os.path.join(REPO, 'config', 'pianist.yaml'), encoding='utf-8') as handle:
        config = yaml.safe_load(handle)
    config['telemetry_bridge']['ros__parameters'].update({'host': '127.0.0.1', 'port': port})
    config_path = os.path.join(workdir, 'pianist.yaml')
    with open(config_path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(config, handle)
    env = dict(os.environ)
    env.setdefault('ROS_DOMAIN_ID', str(random.randint(101, 200)))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    log = os.path.join(workdir, 'bringup.log')
    bringup = os.path.join(os.path.dirname(sys.executable), 'pianist-bringup')
    out = open(log, 'wb')  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([bringup, '--config', config_path, '--source',
                             os.path.join(DATA, 'hands_clip.mp4'), '--loop',
                             '--status-period', '0'], stdout=out, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    return proc, log


def stop_stack(proc: subprocess.Popen) -> int:
    """SIGTERM the stack's process group and wait."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


async def _request(port: int) -> tuple[float, int]:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    try:
        writer.write(b'GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n')
        data = await asyncio.wait_for(reader.read(), 10.0)
    finally:
        writer.close()
    status = int(data[9:12]) if data.startswith(b'HTTP/1.1 ') else 0
    return time.perf_counter() - start, status


async def _client(port: int, deadline: float, rate: float, out: list, errors: list) -> None:
    interval = 1.0 / rate if rate > 0 else 0.0
    # Spread paced clients over one interval so they do not all fire at once.
    next_at = time.perf_counter() + random.uniform(0, interval)
    while time.perf_counter() < deadline:
        if interval:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
        try:
            latency, status = await _request(port)
        except (OSError, asyncio.TimeoutError) as exc:
            errors.append(repr(exc))
            continue
        if status not in (200, 503):
            errors.append(f'status {status}')
        out.append(latency)


async def _load(port: int, clients: int, seconds: float, rate: float):
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, deadline, rate, latencies, errors)
                           for _ in range(clients)))
    return latencies, errors


def measure_fps(port: int, seconds: float, load=None) -> tuple[float, dict]:
    """Return detector FPS over ``seconds`` (under ``load`` if given) and the load result."""
    before = get_health(port)
    start = time.perf_counter()
    result = {}
    if load is None:
        time.sleep(seconds)
    else:
        clients, rate = load
        latencies, errors = asyncio.run(_load(port, clients, seconds, rate))
        ms = np.array(latencies) * 1000.0 if latencies else np.array([float('nan')])
        result = {'clients': clients, 'requests': len(latencies), 'errors': len(errors),
                  'error_examples': errors[:3],
                  'rps': len(latencies) / seconds,
                  'p50_ms': float(np.percentile(ms, 50)), 'p99_ms': float(np.percentile(ms, 99)),
                  'max_ms': float(np.max(ms))}
    after = get_health(port)
    elapsed = time.perf_counter() - start
    fps = (after['frames_processed'] - before['frames_processed']) / elapsed
    return fps, result


def main() -> int:
    """Run the benchmark; return 0 if it ran (goals are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='4 s phases instead of 10 s')
    parser.add_argument('--rate', type=float, default=10.0,
                        help='requests per second per client in the paced model')
    args = parser.parse_args()
    phase = 4.0 if args.quick else 10.0
    if not os.path.isfile(os.path.join(DATA, 'hands_clip.mp4')):
        print(f'bench_telemetry: clip not found in {DATA} (set PIANIST_TEST_DATA)')
        return 2
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc, log = start_stack(port, workdir)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if get_health(port).get('status') == 'ok':
                        break
                except OSError:
                    pass
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
            else:
                print('bench_telemetry: stack never became healthy')
                return 1
            if proc.poll() is not None:
                with open(log, encoding='utf-8', errors='replace') as handle:
                    print(handle.read()[-3000:])
                return 1
            time.sleep(2.0)  # let the detector reach its steady rate
            results = run_phases(port, phase, args.rate)
        finally:
            code = stop_stack(proc)
    results['bringup_exit'] = code
    report(results, args.rate)
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    path = os.path.join(HERE, 'results', 'telemetry.json')
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(results, handle, indent=2)
    os.replace(tmp, path)
    return 0


def run_phases(port: int, phase: float, rate: float) -> dict:
    """Idle, loaded (both models, 1/10/100 clients), idle again."""
    idle_before, _ = measure_fps(port, phase)
    runs = []
    for model, model_rate in (('closed', 0.0), ('paced', rate)):
        for clients in CLIENTS:
            fps, result = measure_fps(port, phase, (clients, model_rate))
            result.update({'model': model, 'fps': fps})
            runs.append(result)
    idle_after, _ = measure_fps(port, phase)
    return {'phase_sec': phase, 'idle_fps_before': idle_before, 'idle_fps_after': idle_after,
            'idle_fps': (idle_before + idle_after) / 2, 'runs': runs}


def report(results: dict, rate: float) -> None:
    """Print the figures, the ratios and the goals."""
    idle = results['idle_fps']
    print(f"detector FPS idle: {results['idle_fps_before']:.2f} before, "
          f"{results['idle_fps_after']:.2f} after, baseline {idle:.2f}")
    print(f'{"model":7} {"clients":>7} {"req/s":>8} {"p50 ms":>8} {"p99 ms":>8} {"max ms":>8} '
          f'{"p99/1cl":>8} {"errors":>6} {"det FPS":>8} {"FPS ratio":>9}')
    for model in ('closed', 'paced'):
        runs = [r for r in results['runs'] if r['model'] == model]
        base_p99 = runs[0]['p99_ms']
        for r in runs:
            ratio = r['fps'] / idle if idle > 0 else float('nan')
            r['fps_ratio'] = ratio
            r['p99_ratio_vs_1_client'] = r['p99_ms'] / base_p99 if base_p99 else float('nan')
            print(f"{model:7} {r['clients']:>7} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} "
                  f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} {r['p99_ratio_vs_1_client']:>8.2f} "
                  f"{r['errors']:>6} {r['fps']:>8.2f} {ratio:>9.3f}")
    for model in ('closed', 'paced'):
        r = [x for x in results['runs'] if x['model'] == model and x['clients'] == 100][0]
        label = 'closed loop' if model == 'closed' else f'paced {rate:g} Hz/client'
        print(f"goal p99 <= {GOAL_P99_MS:g} ms at 100 clients ({label}): {r['p99_ms']:.2f} ms "
              f"-> {'met' if r['p99_ms'] <= GOAL_P99_MS else 'NOT met'}; "
              f"goal FPS ratio >= {GOAL_FPS_RATIO}: {r['fps_ratio']:.3f} -> "
              f"{'met' if r['fps_ratio'] >= GOAL_FPS_RATIO else 'NOT met'}")
    print(f"bringup exit status: {results['bringup_exit']}")


if __name__ == '__main__':
    sys.exit(main())
