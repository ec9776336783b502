"""OTA test helpers: real git repositories, loopback HTTP servers, signed manifests."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from typing import Callable

from pianist_ros.ota.manifest import build_signed
from pianist_ros.ota.manifest import public_key_text
from pianist_ros.ota.manifest import sign

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_SYSTEMCTL = os.path.join(HERE, 'fixtures', 'ota_fake_systemctl.py')

# ---- HTTP --------------------------------------------------------------------------


@dataclass
class Reply:
    """What a route answers: status, body, headers and an optional delay before it."""

    status: int = 200
    body: bytes = b''
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drip: float = 0.0


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 whose routes tests change at run time.

    ``routes`` maps a path to a callable ``(method, body) -> Reply``. Every request is
    recorded in ``requests`` as ``(method, path, body, monotonic time)``.
    """

    def __init__(self, routes: dict[str, Callable[[str, bytes], Reply]], port: int = 0):
        self.routes = routes
        self.requests: list[tuple[str, str, bytes, float]] = []
        self._lock = threading.Lock()
        self._port = port
        self._server = None
        self._thread = None
        self.start()

    @property
    def port(self) -> int:
        """Return the bound port."""
        return self._port

    def url(self, path: str) -> str:
        """Return ``http://127.0.0.1:<port><path>``."""
        return f'http://127.0.0.1:{self._port}{path}'

    def start(self) -> None:
        """Listen (again, on the same port after :meth:`stop`)."""
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def _serve(self) -> None:
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                with owner._lock:
                    owner.requests.append((self.command, self.path, body, time.monotonic()))
                route = owner.routes.get(self.path.split('?')[0])
                reply = route(self.command, body) if route else Reply(404, b'not found')
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    headers = {'Content-Length': str(len(reply.body)), **reply.headers}
                    for key, value in headers.items():
                        if value is not None:
                            self.send_header(key, value)
                    self.end_headers()
                    if reply.drip:
                        for i in range(len(reply.body)):
                            self.wfile.write(reply.body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve  # noqa: N815 - http.server API
            do_POST = _serve  # noqa: N815 - http.server API

            def log_message(self, *_args) -> None:
                pass

        server = http.server.ThreadingHTTPServer(('127.0.0.1', self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (the port is then refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def count(self, path: str, method: str | None = None) -> int:
        """Return how many requests hit ``path`` (and ``method``)."""
        with self._lock:
            return sum(1 for m, p, _b, _t in self.requests
                       if p == path and (method is None or m == method))

    def bodies(self, path: str) -> list[dict]:
        """Return the JSON bodies POSTed to ``path``."""
        with self._lock:
            return [json.loads(b) for m, p, b, _t in self.requests
                    if p == path and m == 'POST']


class FleetServers:
    """Manifest + health on one server, reports on another (so it can go down alone)."""

    def __init__(self, repo: str):
        self.repo = repo
        self.manifest = Reply(404, b'no manifest yet')
        self.health_mode = 'auto'
        self.report_status = 200
        self.main = LocalServer({'/manifest.json': lambda _m, _b: self.manifest,
                                 '/health': self._health})
        self.accepted: list[dict] = []
        self.reports = LocalServer({'/report': self._report})

    def _report(self, _method: str, body: bytes) -> Reply:
        if 200 <= self.report_status < 300:
            self.accepted.append(json.loads(body))
        return Reply(self.report_status, b'{}')

    def _health(self, _method: str, _body: bytes) -> Reply:
        # 'auto' fails while the checked-out release carries a BROKEN marker file,
        # the way a bad release fails its own /health after the restart.
        broken = os.path.exists(os.path.join(self.repo, 'BROKEN'))
        ok = self.health_mode == 'ok' or (self.health_mode == 'auto' and not broken)
        doc = {'status': 'ok' if ok else 'error'}
        if not ok:
            doc['reasons'] = ['detector: no frames for 12 s', 'camera: FAILED']
        return Reply(200 if ok else 503, json.dumps(doc).encode())

    def set_manifest(self, envelope: dict | bytes, status: int = 200, **kwargs) -> None:
        """Serve ``envelope`` (a dict is JSON-encoded) at /manifest.json."""
        body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        self.manifest = Reply(status, body, **kwargs)

    def close(self) -> None:
        """Stop both servers."""
        self.main.stop()
        self.reports.stop()

    def report_bodies(self) -> list[dict]:
        """Return reports the server accepted (answered 2xx), in arrival order."""
        return list(self.accepted)


def manifest_for(key, version: str, git_hash: str, sequence: int, *, expires_in: float = 3600,
                 rollout_percent: int = 100, now: float | None = None) -> dict:
    """Return a signed envelope for one release."""
    now = time.time() if now is None else now
    signed = build_signed(version, git_hash, sequence, now - 60, now + expires_in,
                          rollout_percent)
    return sign(signed, key)


def public_hex(key) -> str:
    """Return the hex public key of a private key (what config pins)."""
    return public_key_text(key.public_key())


# ---- git ---------------------------------------------------------------------------


def git(repo: str, *args: str) -> str:
    """Run git in ``repo`` and return stdout (raise on failure)."""
    env = dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@example.invalid',
               GIT_COMMITTER_NAME='t', GIT_COMMITTER_EMAIL='t@example.invalid')
    return subprocess.run(['git', '-C', repo, *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@dataclass
class Repos:
    """An origin with tagged releases and a device clone checked out at one of them."""

    origin: str
    device: str
    hashes: dict[str, str]


RELEASES = ('1.0.0', '1.9.0', '1.10.0', '1.11.0')


def make_repos(root: str, device_at: str = '1.9.0') -> Repos:
    """Create ``origin`` with a commit and tag per release and clone it as ``device``.

    Release 1.11.0 adds a ``BROKEN`` file, which the fixture health endpoint turns into
    a failing /health.
    """
    origin = os.path.join(root, 'origin')
    os.makedirs(origin)
    git(origin, 'init', '--quiet', '-b', 'main')
    hashes = {}
    for version in RELEASES:
        with open(os.path.join(origin, 'VERSION'), 'w', encoding='utf-8') as handle:
            handle.write(version + '\n')
        git(origin, 'add', 'VERSION')
        if version == '1.11.0':
            with open(os.path.join(origin, 'BROKEN'), 'w', encoding='utf-8') as handle:
                handle.write('this release fails its health check\n')
            git(origin, 'add', 'BROKEN')
        git(origin, 'commit', '--quiet', '-m', f'release {version}')
        git(origin, 'tag', f'v{version}')
        hashes[version] = git(origin, 'rev-parse', 'HEAD')
    device = os.path.join(root, 'device')
    subprocess.run(['git', 'clone', '--quiet', origin, device], check=True)
    git(device, 'checkout', '--quiet', '--detach', hashes[device_at])
    return Repos(origin, device, hashes)


def fake_systemctl(log: str, repo: str = '', exit_code: int = 0, sleep: float = 0.0) -> str:
    """Return a ``restart_command`` that runs the recording stand-in for systemctl."""
    parts = [sys.executable, FAKE_SYSTEMCTL, '--log', log]
    if repo:
        parts += ['--repo', repo]
    if exit_code:
        parts += ['--exit', str(exit_code)]
    if sleep:
        parts += ['--sleep', str(sleep)]
    return ' '.join(parts) + ' restart {service}'


def restart_calls(log: str) -> list[dict]:
    """Return the calls the stand-in recorded, oldest first."""
    if not os.path.exists(log):
        return []
    with open(log, encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]
