"""A small, hardened HTTP/1.1 server on an asyncio loop in one background thread (ROS-free).

Why asyncio and not ``http.server.ThreadingHTTPServer``: a thread per connection lets
a few hundred slowloris connections pin a few hundred threads (or, with a bounded
pool, starve everyone else), and each extra thread competes for the GIL with the
detector in the same process. Here every connection is a coroutine on one loop
thread: an idle or trickling client costs a few KB and no thread, and these limits
hold for every connection:

- the whole request head (request line + headers) must arrive within
  ``timeout_sec`` (a deadline, not a per-read timeout, so trickling one byte at a
  time does not extend it); keep-alive idle time and response writes have the same
  bound; expired connections are closed (408 where a request was started);
- the head is capped at ``max_header_bytes`` (431) and ``MAX_HEADERS`` lines;
- malformed requests get 400 and the connection is closed; a request that is clearly
  not HTTP/1.x (first byte not a method character, bare LF line ends, a request line
  without a valid version such as HTTP/0.9 or a TLS ClientHello) gets 400 as soon as
  its first byte or line arrives, not at the deadline;
- at most ``max_connections`` are open; at the cap a newcomer evicts the oldest
  connection that is not being answered (still sending its head, or idle between
  keep-alive requests); only when every connection is mid-response is it answered 503;
- request bodies are never read: methods other than GET and HEAD get 405 and close.

Handlers run on the loop thread and must be fast and non-blocking (ours only read an
immutable snapshot). :func:`start_http_server` returns ``(server, thread)`` like
``prometheus_client.start_http_server``; ``server.shutdown()`` stops and joins it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import json
import logging
import socket
import threading
from typing import Callable

_LOG = logging.getLogger(__name__)

MAX_HEADERS = 64
MAX_REQUESTS_PER_CONNECTION = 1000
_REASONS = {200: 'OK', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed',
            408: 'Request Timeout', 431: 'Request Header Fields Too Large',
            500: 'Internal Server Error', 503: 'Service Unavailable'}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   'abcdefghijklmnopqrstuvwxyz')


class TelemetryError(Exception):
    """Base class of telemetry bridge errors."""


class ServerStartError(TelemetryError):
    """The HTTP server could not bind or listen (port in use, bad address)."""


@dataclass(frozen=True)
class Request:
    """A parsed request head."""

    method: str
    path: str
    query: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """Return the first header called ``name`` (case-insensitive), or ``None``."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Response:
    """A complete response; ``headers`` are extra headers beyond the standard ones."""

    status: int
    body: bytes = b''
    content_type: str = 'application/json'
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ServerLimits:
    """Per-connection limits (see the module docstring)."""

    timeout_sec: float = 5.0
    max_connections: int = 256
    max_header_bytes: int = 8192

    def __post_init__(self) -> None:
        if self.timeout_sec <= 0:
            raise ValueError('timeout_sec must be > 0')
        if self.max_connections < 1:
            raise ValueError('max_connections must be >= 1')
        if self.max_header_bytes < 256:
            raise ValueError('max_header_bytes must be >= 256')


class BadRequest(TelemetryError):
    """The request head is malformed; ``status`` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def json_response(status: int, payload: dict, headers: tuple[tuple[str, str], ...] = ()
                  ) -> Response:
    """Return a JSON response."""
    body = json.dumps(payload, separators=(',', ':')).encode('utf-8')
    return Response(status, body, 'application/json', headers)


def parse_head(head: bytes) -> Request:
    """Parse a request head (everything up to and including the blank line).

    :raises BadRequest: on a malformed request line or header, or too many headers.
    """
    text = head.decode('latin-1')  # latin-1 maps every byte, so this cannot fail
    lines = text.split('\r\n')
    method, target, version = parse_request_line(lines[0].encode('latin-1'))
    path, _, query = target.partition('?')
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if len(headers) >= MAX_HEADERS:
            raise BadRequest('too many headers', 431)
        name, sep, value = line.partition(':')
        if not sep or not name or not set(name) <= _TOKEN:
            raise BadRequest('malformed header line')
        headers.append((name.lower(), value.strip(' \t')))
    return Request(method, path, query, version, tuple(headers))


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """Parse ``METHOD SP target SP HTTP/1.x`` (without the CRLF).

    :return: ``(method, target, version)``.
    :raises BadRequest: when the line is not an HTTP/1.0 or HTTP/1.1 request line.
    """
    parts = line.decode('latin-1').split(' ')
    if len(parts) != 3:
        raise BadRequest('malformed request line')
    method, target, version = parts
    if not method or not set(method) <= _TOKEN:
        raise BadRequest('malformed method')
    if version not in ('HTTP/1.0', 'HTTP/1.1'):
        raise BadRequest('unsupported HTTP version')
    if not target.startswith('/') or any(ord(c) <= 32 or ord(c) >= 127 for c in target):
        raise BadRequest('malformed request target')
    return method, target, version


def _wants_keep_alive(request: Request) -> bool:
    connection = (request.header('connection') or '').lower()
    if request.version == 'HTTP/1.0':
        return 'keep-alive' in connection
    return 'close' not in connection


def _has_body(request: Request) -> bool:
    length = request.header('content-length')
    return request.header('transfer-encoding') is not None or (
        length is not None and length.strip() not in ('', '0'))


def serialize(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    """Return the bytes of a response (HEAD: headers with the body's length, no body)."""
    lines = [f'HTTP/1.1 {response.status} {_REASONS.get(response.status, "Unknown")}',
             f'Content-Type: {response.content_type}',
             f'Content-Length: {len(response.body)}',
             'Cache-Control: no-store',
             f'Connection: {"keep-alive" if keep_alive else "close"}']
    lines += [f'{k}: {v}' for k, v in response.headers]
    head = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
    return head if head_only else head + response.body


Handler = Callable[[Request], Response]
EventHook = Callable[[str], None]


class HttpServer:
    """The server; build it with :func:`start_http_server`.

    :param handler: maps a request to a response; runs on the loop thread, must be fast.
    :param sock: a bound, listening TCP socket (the server owns and closes it).
    :param limits: per-connection limits.
    :param on_connection_error: called with a reason ('timeout', 'rejected', 'evicted',
        'bad_request', 'too_large', 'reset', 'handler_error') on the loop thread.
    """

    def __init__(self, handler: Handler, sock: socket.socket, limits: ServerLimits,
                 on_connection_error: EventHook | None = None):
        self._handler = handler
        self._sock = sock
        self._limits = limits
        self._on_error = on_connection_error or (lambda _reason: None)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._stopping = False
        self._clients: set[asyncio.Task] = set()
        # Connections not being answered, oldest first (dicts keep insertion order), and
        # the first to go at the cap: idle keep-alive ones (often already closed by the
        # client, close not yet seen) before those that never completed a request head.
        self._idle: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._reading: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.host, self.port = sock.getsockname()[:2]

    @property
    def open_connections(self) -> int:
        """Return the number of connections being served (approximate from other threads)."""
        return len(self._clients)

    @property
    def running(self) -> bool:
        """Return whether the loop is serving."""
        return self._started.is_set() and self._loop.is_running() and not self._stopping

    def serve(self) -> None:
        """Run the loop until :meth:`shutdown` (the body of the server thread)."""
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - recorded for the node's diagnostics
            self._error = exc
            _LOG.error('telemetry HTTP server stopped: %r', exc)
        finally:
            self._started.set()
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()
                self._sock.close()

    @property
    def error(self) -> BaseException | None:
        """Return the exception that stopped the loop, if any."""
        return self._error

    def shutdown(self, thread: threading.Thread | None = None, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, and join ``thread`` (idempotent)."""
        self._stopping = True
        try:
            self._loop.call_soon_threadsafe(self._stop.set)
        except RuntimeError:
            pass  # loop already closed
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    async def _main(self) -> None:
        server = await asyncio.start_server(
            self._on_client, sock=self._sock, limit=self._limits.max_header_bytes)
        self._started.set()
        try:
            if not self._stopping:
                await self._stop.wait()
        finally:
            server.close()
            for task in list(self._clients):
                task.cancel()
            if self._clients:
                await asyncio.wait(list(self._clients), timeout=2.0)

    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= self._limits.max_connections and (self._idle or self._reading):
            # Make room by dropping the oldest connection we are not answering: idle
            # keep-alive ones, then silent or trickling sockets (a connection flood), so
            # a flood only ever evicts itself and a real client is served at once.
            pool = self._idle if self._idle else self._reading
            victim = next(iter(pool))
            victim_writer = pool.pop(victim)
            self._clients.discard(victim)
            # Abort as well as cancel: a cancel that races a just-finished read can be
            # swallowed by wait_for, but a closed socket ends the connection regardless.
            victim_writer.transport.abort()
            victim.cancel()
            self._on_error('evicted')
        if len(self._clients) >= self._limits.max_connections or self._stopping:
            self._on_error('rejected')
            # No drain: a client that does not read must not hold us; the kernel buffer
            # takes these few bytes.
            writer.write(serialize(json_response(503, {'error': 'too many connections'}),
                                   keep_alive=False))
            writer.close()
            return
        self._clients.add(task)
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, OSError):
            self._on_error('reset')
        finally:
            self._clients.discard(task)
            self._idle.pop(task, None)
            self._reading.pop(task, None)
            if writer.transport.get_write_buffer_size():
                # The client stopped reading: drop the unsent bytes instead of waiting.
                writer.transport.abort()
            else:
                writer.close()

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        timeout = self._limits.timeout_sec
        task = asyncio.current_task()
        for served in range(MAX_REQUESTS_PER_CONNECTION):
            if task not in self._clients:
                return  # evicted while we were answering
            waiting = self._idle if served else self._reading
            waiting[task] = writer  # newest last
            received = bytearray()
            try:
                head = await asyncio.wait_for(self._read_head(reader, received), timeout)
            except asyncio.TimeoutError:
                if served == 0 or received:  # a keep-alive connection idling out just closes
                    self._on_error('timeout')
                    await self._reply_and_close(writer, 408, 'request head too slow')
                return
            except asyncio.IncompleteReadError:
                if bytes(received).strip():
                    self._on_error('bad_request')
                return  # client closed
            except BadRequest as exc:
                self._on_error('too_large' if exc.status == 431 else 'bad_request')
                await self._reply_and_close(writer, exc.status, str(exc))
                return
            finally:
                waiting.pop(task, None)
            try:
                request = parse_head(head)
            except BadRequest as exc:
                self._on_error('too_large' if exc.status == 431 else 'bad_request')
                await self._reply_and_close(writer, exc.status, str(exc))
                return
            try:
                response = self._handler(request)
            except Exception as exc:  # noqa: BLE001 - one bad request must not kill the loop
                _LOG.exception('telemetry handler failed for %s %s', request.method,
                               request.path)
                self._on_error('handler_error')
                response = json_response(500, {'error': f'internal error: {type(exc).__name__}'})
            keep_alive = (_wants_keep_alive(request) and not _has_body(request)
                          and request.method in ('GET', 'HEAD') and not self._stopping
                          and served + 1 < MAX_REQUESTS_PER_CONNECTION)
            writer.write(serialize(response, keep_alive, head_only=request.method == 'HEAD'))
            try:
                await asyncio.wait_for(writer.drain(), timeout)
            except asyncio.TimeoutError:
                self._on_error('timeout')
                return
            if not keep_alive:
                return

    async def _read_head(self, reader: asyncio.StreamReader, received: bytearray) -> bytes:
        """Read a request head line by line, refusing non-HTTP/1.x input at once.

        ``received`` collects the bytes read so far (the caller's view after a timeout).

        :raises BadRequest: 400 on a non-method first byte, a bare LF or a malformed
            request line; 431 when the head exceeds ``max_header_bytes`` or MAX_HEADERS.
        :raises asyncio.IncompleteReadError: when the client closes mid-head.
        """
        limit = self._limits.max_header_bytes
        first = await reader.readexactly(1)
        received += first
        if chr(first[0]) not in _TOKEN:
            raise BadRequest('not an HTTP/1.x request')  # e.g. TLS ClientHello (0x16)
        lines = 0
        while True:
            try:
                line = await reader.readuntil(b'\n')
            except asyncio.LimitOverrunError as exc:
                raise BadRequest('request head too large', 431) from exc
            received += line
            if len(received) > limit:
                raise BadRequest('request head too large', 431)
            if not line.endswith(b'\r\n'):
                raise BadRequest('line not terminated by CRLF')
            if lines == 0:
                parse_request_line(bytes(received[:-2]))
            elif line == b'\r\n':
                return bytes(received)
            elif lines > MAX_HEADERS:
                raise BadRequest('too many headers', 431)
            lines += 1

    async def _reply_and_close(self, writer: asyncio.StreamWriter, status: int,
                               message: str) -> None:
        writer.write(serialize(json_response(status, {'error': message}), keep_alive=False))
        try:
            await asyncio.wait_for(writer.drain(), self._limits.timeout_sec)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass


def bind_socket(host: str, port: int, backlog: int = 128) -> socket.socket:
    """Create a listening TCP socket (IPv4 or IPv6 by the host's form).

    :raises ServerStartError: when the address is invalid or the port is taken.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, IndexError) as exc:
        raise ServerStartError(f'cannot resolve {host}:{port}: {exc}') from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ServerStartError(f'cannot listen on {host}:{port}: {exc}') from exc
    return sock


def start_http_server(handler: Handler, host: str = '127.0.0.1', port: int = 0,
                      limits: ServerLimits | None = None,
                      on_connection_error: EventHook | None = None,
                      ready_timeout: float = 5.0) -> tuple[HttpServer, threading.Thread]:
    """Bind now (errors surface in the caller) and serve from a daemon thread.

    :return: ``(server, thread)``; stop with ``server.shutdown(thread)``.
    :raises ServerStartError: if the socket cannot be bound or the loop does not start.
    """
    sock = bind_socket(host, port)
    server = HttpServer(handler, sock, limits or ServerLimits(), on_connection_error)
    thread = threading.Thread(target=server.serve, name=f'telemetry-http:{server.port}',
                              daemon=True)
    thread.start()
    # The socket already listens, so clients queue in the backlog meanwhile; waiting
    # here only surfaces a loop that failed to start.
    if not server._started.wait(ready_timeout) or server.error is not None:  # noqa: SLF001
        server.shutdown(thread)
        raise ServerStartError(f'HTTP loop did not start: {server.error!r}')
    return server, thread
