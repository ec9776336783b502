"""The telemetry HTTP server over real sockets on 127.0.0.1 (no rclpy): endpoints and abuse."""

import concurrent.futures
import os
import socket
import threading
import time

import pytest

from pianist_ros.telemetry.app import TelemetryApp
from pianist_ros.telemetry.config import default_config
from pianist_ros.telemetry.health import ComponentReport
from pianist_ros.telemetry.health import HealthModel
from pianist_ros.telemetry.metrics import TelemetryMetrics
from pianist_ros.telemetry.server import Response
from pianist_ros.telemetry.server import ServerLimits
from pianist_ros.telemetry.server import ServerStartError
from pianist_ros.telemetry.server import start_http_server
from support import wait_until
from telemetry_support import http_get

#: Generous bound for "not delayed" on this loaded 2-core machine; a blocked server
#: would take the full client timeout (5 s) or the slow client's lifetime instead.
FAST = 1.0


class Served:
    """A model fed directly, its app, and a running server."""

    def __init__(self, limits: ServerLimits, handler=None):
        self.model = HealthModel(default_config(stale_after=5.0), device_id='dev', version='v')
        self.metrics = TelemetryMetrics(self.model)
        self.app = TelemetryApp(self.model, self.metrics)
        self.server, self.thread = start_http_server(
            handler or self.app, '127.0.0.1', 0, limits,
            on_connection_error=self.app.connection_error)
        self.port = self.server.port

    def make_healthy(self) -> None:
        self.model.set_camera_state('STREAMING')
        self.model.update_components([ComponentReport('camera: camera', 0, 'ok'),
                                      ComponentReport('hand_detector: detector', 0, 'ok')])
        self.model.record_frame(1)
        self.model.record_frame(2)

    def close(self) -> None:
        self.server.shutdown(self.thread)


@pytest.fixture
def served():
    s = Served(ServerLimits(timeout_sec=1.0, max_connections=64, max_header_bytes=4096))
    try:
        yield s
    finally:
        s.close()


def test_every_endpoint_fields_types_and_codes(served):
    res = http_get(served.port, '/health')
    assert res.status == 503 and res.headers['content-type'] == 'application/json'
    assert res.json()['status'] == 'error' and res.json()['reasons']
    assert http_get(served.port, '/readyz').status == 503
    served.make_healthy()
    res = http_get(served.port, '/health')
    body = res.json()
    assert res.status == 200 and body['status'] == 'ok'
    assert isinstance(body['current_fps'], float) and isinstance(body['hands_detected'], int)
    assert body['hands_detected'] == 2 and isinstance(body['uptime_seconds'], float)
    for comp in body['components'].values():
        assert set(comp) == {'level', 'message', 'age_sec'} and comp['level'] == 'OK'
        assert isinstance(comp['age_sec'], float)
    assert res.headers['cache-control'] == 'no-store'
    live = http_get(served.port, '/livez')
    assert live.status == 200 and live.json()['status'] == 'alive'
    ready = http_get(served.port, '/readyz')
    assert ready.status == 200 and ready.json()['camera_state'] == 'STREAMING'
    metrics = http_get(served.port, '/metrics')
    assert metrics.status == 200 and metrics.headers['content-type'].startswith('text/plain')
    assert b'pianist_health_ok 1.0' in metrics.body
    assert b'process_resident_memory_bytes' in metrics.body
    assert http_get(served.port, '/health?verbose=1').status == 200


def test_head_unknown_path_and_wrong_method(served):
    head = http_get(served.port, '/health', method='HEAD')
    assert head.status == 503 and head.body == b''
    assert int(head.headers['content-length']) > 50
    missing = http_get(served.port, '/nope')
    assert missing.status == 404 and missing.json()['error'] == 'not found'
    assert '/health' in missing.json()['endpoints']
    for method in ('POST', 'PUT', 'DELETE'):
        res = http_get(served.port, '/health', method=method)
        assert res.status == 405 and res.headers['allow'] == 'GET, HEAD'
        assert res.json()['allow'] == 'GET, HEAD'


def test_keep_alive_serves_many_requests_on_one_connection(served):
    served.make_healthy()
    with socket.create_connection(('127.0.0.1', served.port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(b'GET /livez HTTP/1.1\r\nHost: x\r\n\r\n')
            data = _read_response(sock)
            assert data.startswith(b'HTTP/1.1 200') and b'Connection: keep-alive' in data
        sock.sendall(b'GET /livez HTTP/1.0\r\n\r\n')
        assert b'Connection: close' in _read_response(sock)
        assert sock.recv(10) == b''  # the server closed it


def _read_response(sock: socket.socket) -> bytes:
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    length = int([line.split(b':')[1] for line in head.split(b'\r\n')
                  if line.lower().startswith(b'content-length')][0])
    while len(body) < length:
        body += sock.recv(4096)
    return head + b'\r\n\r\n' + body


def _assert_others_fast(port: int, count: int = 10) -> None:
    for _ in range(count):
        res = http_get(port, '/livez', timeout=5.0)
        assert res.status == 200 and res.elapsed < FAST, res.elapsed


def test_slowloris_is_cut_off_and_never_delays_others(served):
    sock = socket.create_connection(('127.0.0.1', served.port), timeout=5)
    try:
        start = time.monotonic()
        request = b'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ' + b'a' * 200
        sent = 0
        closed_after = None
        # Trickle one byte every 50 ms: each read is fast, but the head deadline is 1 s.
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - start
                break
            sent += 1
            if sent % 5 == 0:
                _assert_others_fast(served.port, count=1)
            time.sleep(0.05)
        if closed_after is None:
            sock.settimeout(5)
            reply = sock.recv(4096)
            closed_after = time.monotonic() - start
            assert reply == b'' or reply.startswith(b'HTTP/1.1 408')
        assert closed_after < 1.0 + FAST + 1.0, closed_after
    finally:
        sock.close()
    samples = served.metrics.registry.get_sample_value(
        'pianist_http_connection_errors_total', {'reason': 'timeout'})
    assert samples and samples >= 1


def test_garbage_bytes_get_400_and_others_stay_fast(served):
    garbage = socket.create_connection(('127.0.0.1', served.port), timeout=5)
    silent = socket.create_connection(('127.0.0.1', served.port), timeout=5)
    try:
        garbage.sendall(os.urandom(512).replace(b'\r\n\r\n', b'') + b'\r\n\r\n')
        _assert_others_fast(served.port)
        assert garbage.recv(4096).startswith(b'HTTP/1.1 400')
        # A connection that sends nothing holds no worker and is dropped at the deadline.
        silent_start = time.monotonic()
        assert silent.recv(4096).startswith(b'HTTP/1.1 408')
        assert time.monotonic() - silent_start < 1.0 + FAST
    finally:
        garbage.close()
        silent.close()


def test_huge_header_gets_431_quickly(served):
    sock = socket.create_connection(('127.0.0.1', served.port), timeout=5)
    try:
        start = time.monotonic()
        try:
            sock.sendall(b'GET /health HTTP/1.1\r\nX-Big: ' + b'b' * 200_000 + b'\r\n\r\n')
        except OSError:
            pass  # the server may close before we finish sending: that is the point
        reply = sock.recv(4096)
        assert reply.startswith(b'HTTP/1.1 431'), reply[:80]
        assert time.monotonic() - start < FAST
        _assert_others_fast(served.port)
    finally:
        sock.close()
    res = http_get(served.port, '/health', headers={'X-Big': 'c' * 10_000})
    assert res.status == 431


def test_fifty_parallel_clients_for_a_few_seconds_are_all_answered(served):
    served.make_healthy()
    deadline = time.monotonic() + 3.0
    writer_stop = threading.Event()
    writer_worst = []

    def writer():
        # Stands in for the ROS callbacks: must never wait for the HTTP side.
        worst = 0.0
        while not writer_stop.is_set():
            start = time.perf_counter()
            served.model.record_frame(1)
            served.model.update_components([ComponentReport('camera: camera', 0, 'ok')])
            worst = max(worst, time.perf_counter() - start)
            time.sleep(0.005)
        writer_worst.append(worst)

    def client(_):
        statuses = []
        while time.monotonic() < deadline:
            path = ('/health', '/metrics', '/livez', '/readyz')[len(statuses) % 4]
            res = http_get(served.port, path, timeout=10.0)
            statuses.append((path, res.status, res.body[:300]))
        return statuses

    writer_thread = threading.Thread(target=writer)
    writer_thread.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            results = list(pool.map(client, range(50)))
    finally:
        writer_stop.set()
        writer_thread.join()
    flat = [s for r in results for s in r]
    assert all(len(r) >= 1 for r in results)
    bad = [s for s in flat if s[1] != 200]
    assert not bad, (len(bad), bad[:3])
    assert len(flat) >= 100
    # Generous: the GIL is shared with 50 client threads here; a lock held across I/O
    # would show up as seconds.
    assert writer_worst[0] < 0.5, writer_worst


def test_silent_sockets_filling_the_cap_never_lock_out_a_real_client():
    s = Served(ServerLimits(timeout_sec=30.0, max_connections=8, max_header_bytes=4096))
    silent = []
    try:
        # A connection flood: 3x the cap of sockets that never send a byte.
        for _ in range(24):
            silent.append(socket.create_connection(('127.0.0.1', s.port), timeout=5))
        assert wait_until(lambda: s.server.open_connections == 8, timeout=5.0)
        for _ in range(5):
            res = http_get(s.port, '/livez', timeout=5.0)
            assert res.status == 200 and res.elapsed < FAST, (res.status, res.elapsed)
        assert s.metrics.registry.get_sample_value(
            'pianist_http_connection_errors_total', {'reason': 'evicted'}) >= 16
        # The oldest silent sockets were the ones dropped.
        assert _closed_by_server(silent[0]) and not _closed_by_server(silent[-1])
    finally:
        for sock in silent:
            sock.close()
        s.close()


def test_connection_cap_refuses_a_newcomer_only_when_every_connection_is_mid_response():
    big = b'x' * (16 << 20)  # far more than the socket buffers: drain blocks

    def handler(request):
        return Response(200, big, 'text/plain')

    s = Served(ServerLimits(timeout_sec=20.0, max_connections=2, max_header_bytes=4096),
               handler=handler)
    stuck = []
    try:
        for _ in range(2):  # clients that ask for a big body and never read it
            sock = socket.create_connection(('127.0.0.1', s.port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b'GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
            stuck.append(sock)
        assert wait_until(lambda: s.server.open_connections == 2, timeout=5.0)
        time.sleep(0.3)  # let the server reach its drain() (not an assertion)
        res = http_get(s.port, '/livez', timeout=5.0)
        assert res.status == 503 and res.json()['error'] == 'too many connections'
        assert res.elapsed < FAST
    finally:
        for sock in stuck:
            sock.close()
        s.close()


@pytest.mark.parametrize('data', [
    b'GET /health HTTP/1.1\nHost: x\n\n',  # bare LF
    b'GET /health\r\n',  # HTTP/0.9
    b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + os.urandom(64),  # TLS ClientHello
    b'GET / HTTP/2.0\r\n',
])
def test_clearly_not_http1_gets_400_at_once(served, data):
    with socket.create_connection(('127.0.0.1', served.port), timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(data)
        reply = sock.recv(4096)
        assert reply.startswith(b'HTTP/1.1 400'), reply[:80]
        # The served fixture's head deadline is 1 s: well under it means "at once".
        assert time.monotonic() - start < 0.5


def test_pipelined_and_headerless_requests_still_work(served):
    with socket.create_connection(('127.0.0.1', served.port), timeout=5) as sock:
        sock.sendall(b'GET /livez HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.0\r\n\r\n')
        data = b''
        while chunk := sock.recv(4096):  # the server closes after the HTTP/1.0 one
            data += chunk
        assert data.startswith(b'HTTP/1.1 200') and data.count(b'HTTP/1.1 200 OK') == 2
        assert b'Connection: keep-alive' in data and b'Connection: close' in data


def test_handler_exception_gives_500_and_the_server_lives_on():
    calls = []

    def handler(request):
        calls.append(request.path)
        if request.path == '/boom':
            raise RuntimeError('bug')
        return TelemetryApp(model, TelemetryMetrics(model))(request)

    model = HealthModel(default_config())
    s = Served(ServerLimits(timeout_sec=1.0), handler=handler)
    try:
        assert http_get(s.port, '/boom').status == 500
        assert http_get(s.port, '/livez').status == 200
    finally:
        s.close()


def test_shutdown_closes_connections_joins_the_thread_and_frees_the_port():
    s = Served(ServerLimits(timeout_sec=30.0))
    idle = socket.create_connection(('127.0.0.1', s.port), timeout=5)
    try:
        assert wait_until(lambda: s.server.open_connections == 1, timeout=5.0)
        start = time.monotonic()
        s.close()
        assert not s.thread.is_alive() and time.monotonic() - start < 5.0
        assert idle.recv(10) in (b'',) or idle.recv(10) == b''
    finally:
        idle.close()
    with pytest.raises(OSError):
        socket.create_connection(('127.0.0.1', s.port), timeout=1)
    again, thread = start_http_server(lambda r: None, '127.0.0.1', s.port)
    again.shutdown(thread)


def test_port_in_use_raises_server_start_error():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen(1)
        with pytest.raises(ServerStartError, match='cannot listen'):
            start_http_server(lambda r: None, '127.0.0.1', sock.getsockname()[1])


def test_at_the_cap_idle_keep_alive_connections_make_room():
    s = Served(ServerLimits(timeout_sec=10.0, max_connections=2, max_header_bytes=4096))
    kept = []
    try:
        for _ in range(2):
            sock = socket.create_connection(('127.0.0.1', s.port), timeout=5)
            sock.sendall(b'GET /livez HTTP/1.1\r\nHost: x\r\n\r\n')
            assert _read_response(sock).startswith(b'HTTP/1.1 200')
            kept.append(sock)
        assert s.server.open_connections == 2
        assert http_get(s.port, '/livez').status == 200
        assert sum(_closed_by_server(sock) for sock in kept) == 1  # one idle one was dropped
    finally:
        for sock in kept:
            sock.close()
        s.close()


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(1.0)
    try:
        return sock.recv(10) == b''
    except (socket.timeout, ConnectionResetError):
        return False
