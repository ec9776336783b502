"""sd_notify for systemd's ``Type=notify`` and watchdog, in plain Python (ROS-free).

systemd hands a notify-type service two things in its environment: ``NOTIFY_SOCKET``
(a unix datagram socket; a leading ``@`` means the Linux abstract namespace) and, with
``WatchdogSec=``, ``WATCHDOG_USEC`` (+ ``WATCHDOG_PID``). The service sends newline-
separated ``KEY=value`` datagrams: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``,
``STOPPING=1``. This is the protocol of ``sd_notify(3)`` and ``sd_watchdog_enabled(3)``.

Why our own module and not the ``sdnotify`` package: the protocol is one ``sendto``;
``sdnotify`` swallows every error silently, does not parse ``WATCHDOG_USEC`` /
``WATCHDOG_PID``, has had no release since 2019 and has no rosdep key; stdlib only
keeps the watchdog path free of dependencies (docker/sd-notify-relay, which runs on
the host, uses the same protocol with no package installed at all).

:class:`FlowWatchdog` is the policy the stack monitor applies: READY once every
watched stream has delivered, WATCHDOG only while every one of them is fresh, so a
process that is alive but whose pipeline hangs stops petting and gets restarted.
"""

from __future__ import annotations

from dataclasses import dataclass
import errno
import logging
import os
import socket
from typing import Iterable, Mapping

_LOG = logging.getLogger(__name__)

#: Longest datagram we send; systemd reads up to its pipe buffer, STATUS should be short.
MAX_MESSAGE_BYTES = 4096
#: Longest STATUS text; longer text is cut (systemctl status shows one line anyway).
MAX_STATUS_CHARS = 400


class SystemdError(Exception):
    """Base class of this module's errors."""


class NotifyError(SystemdError):
    """A notification could not be sent (socket missing, refused, queue full)."""


def socket_address(value: str) -> str | bytes:
    """Turn a ``NOTIFY_SOCKET`` value into an ``AF_UNIX`` address.

    :param value: an absolute path, or ``@name`` for the abstract namespace.
    :raises ValueError: for anything else (relative paths, ``vsock:``), which we
        cannot send to.
    :return: the path, or the name prefixed with a NUL byte for an abstract socket.
    """
    if value.startswith('@') and len(value) > 1:
        return b'\0' + value[1:].encode('utf-8')
    if value.startswith('/'):
        return value
    raise ValueError(f'unsupported NOTIFY_SOCKET address {value!r} (need /path or @name)')


def watchdog_interval(environ: Mapping[str, str] | None = None,
                      pid: int | None = None) -> float | None:
    """Return the watchdog timeout in seconds, or ``None`` when it is off for us.

    Same rules as ``sd_watchdog_enabled(3)``: ``WATCHDOG_USEC`` must be a positive
    integer, and when ``WATCHDOG_PID`` is set it must be our PID (a child that
    inherited the environment must not pet on its parent's behalf).

    :param environ: environment to read (default ``os.environ``).
    :param pid: our PID (default ``os.getpid()``).
    :return: seconds, or ``None``.
    """
    env = os.environ if environ is None else environ
    raw = env.get('WATCHDOG_USEC', '').strip()
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        _LOG.debug('ignoring malformed WATCHDOG_USEC=%r', raw)
        return None
    if usec <= 0:
        return None
    owner = env.get('WATCHDOG_PID', '').strip()
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1e6


def format_message(fields: Mapping[str, str | int]) -> bytes:
    """Encode ``{'READY': 1, 'STATUS': 'x'}`` as a notify datagram.

    Newlines in values would start a new field, so they become spaces.

    :raises ValueError: for an empty message or one over :data:`MAX_MESSAGE_BYTES`.
    """
    if not fields:
        raise ValueError('empty notification')
    lines = []
    for key, value in fields.items():
        if not key or '=' in key or '\n' in key:
            raise ValueError(f'bad notify field name {key!r}')
        text = str(value).replace('\r', ' ').replace('\n', ' ')
        lines.append(f'{key}={text}')
    data = '\n'.join(lines).encode('utf-8')
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f'notification of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}')
    return data


def parse_message(data: bytes) -> dict[str, str]:
    """Decode a notify datagram into ``{key: value}`` (used by tests and the relay)."""
    fields = {}
    for line in data.decode('utf-8', 'replace').split('\n'):
        key, sep, value = line.partition('=')
        if sep and key:
            fields[key] = value
    return fields


class Notifier:
    """Send notifications to systemd; a no-op when not started by systemd.

    The socket is non-blocking: if systemd's queue is full we drop the datagram
    (and count it) rather than stall the executor thread that sends it.

    :param address: ``NOTIFY_SOCKET`` value; ``None`` reads the environment,
        ``''`` disables notifications.
    :raises ValueError: for an address we cannot use.
    """

    def __init__(self, address: str | None = None):
        if address is None:
            address = os.environ.get('NOTIFY_SOCKET', '')
        self._address = socket_address(address) if address else None
        self._sock: socket.socket | None = None
        self.sent = 0
        self.failed = 0
        self.last_error = ''

    @property
    def enabled(self) -> bool:
        """Return whether a notify socket is configured."""
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send one datagram with the given fields, e.g. READY=1.

        :raises ValueError: for an invalid or oversized message.
        :return: ``True`` if sent, ``False`` if disabled or the send failed (the
            error is kept in :attr:`last_error`; see :meth:`notify_or_raise`).
        """
        try:
            return self.notify_or_raise(**fields)
        except NotifyError as exc:
            self.failed += 1
            self.last_error = str(exc)
            return False

    def notify_or_raise(self, **fields: str | int) -> bool:
        """Like :meth:`notify`, but raise on a failed send.

        :raises NotifyError: when the socket is missing, refuses or is full.
        :raises ValueError: for an invalid or oversized message.
        :return: ``False`` when disabled, ``True`` when sent.
        """
        data = format_message(fields)
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self._address)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            raise NotifyError(f'sd_notify to {self._address!r} failed: {name}: {exc}') from exc
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """Send ``READY=1`` (with an optional ``STATUS=``)."""
        fields: dict[str, str | int] = {'READY': 1}
        if status is not None:
            fields['STATUS'] = status[:MAX_STATUS_CHARS]
        return self.notify(**fields)

    def status(self, text: str) -> bool:
        """Send ``STATUS=text`` (shown by ``systemctl status``)."""
        return self.notify(STATUS=text[:MAX_STATUS_CHARS])

    def watchdog(self) -> bool:
        """Send ``WATCHDOG=1`` (pet the watchdog)."""
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        """Send ``STOPPING=1`` (we are shutting down on purpose)."""
        fields: dict[str, str | int] = {'STOPPING': 1}
        if status is not None:
            fields['STATUS'] = status[:MAX_STATUS_CHARS]
        return self.notify(**fields)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@dataclass(frozen=True)
class WatchdogDecision:
    """What :meth:`FlowWatchdog.evaluate` wants sent now."""

    ready: bool
    pet: bool
    stale: tuple[str, ...]


class FlowWatchdog:
    """Decide READY / WATCHDOG from the times each watched stream last delivered.

    READY is due once, when every stream has delivered at least once. A pet is due
    while every stream delivered within ``max_age_sec``. With a watchdog timeout of
    W and ``max_age_sec`` = W/2, systemd acts at most 1.5 W after the last frame.

    :param streams: names of the streams that must flow (e.g. camera, detector).
    :param max_age_sec: how old a stream's last message may be to count as flowing.
    :raises ValueError: for no streams or a non-positive age.
    """

    def __init__(self, streams: Iterable[str], max_age_sec: float):
        names = tuple(streams)
        if not names:
            raise ValueError('at least one stream is required')
        if not max_age_sec > 0:
            raise ValueError('max_age_sec must be > 0')
        self.streams = names
        self.max_age_sec = float(max_age_sec)
        self._last: dict[str, float | None] = {n: None for n in names}
        self._ready_sent = False

    def seen(self, stream: str, now: float) -> None:
        """Record that ``stream`` delivered a message at monotonic time ``now``.

        :raises KeyError: for a stream that is not watched.
        """
        if stream not in self._last:
            raise KeyError(stream)
        self._last[stream] = now

    def stale(self, now: float) -> tuple[str, ...]:
        """Return the streams that have not delivered within ``max_age_sec``."""
        return tuple(n for n, t in self._last.items()
                     if t is None or now - t > self.max_age_sec)

    def evaluate(self, now: float) -> WatchdogDecision:
        """Return what to send at ``now``; READY is reported once only."""
        stale = self.stale(now)
        flowing = not stale
        ready = flowing and not self._ready_sent
        if ready:
            self._ready_sent = True
        return WatchdogDecision(ready=ready, pet=flowing and self._ready_sent, stale=stale)

    @property
    def ready_sent(self) -> bool:
        """Return whether READY has been reported."""
        return self._ready_sent
