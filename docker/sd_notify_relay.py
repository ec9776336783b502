#!/usr/bin/env python3
"""Relay sd_notify messages from a container to systemd (installed as sd-notify-relay).

systemd accepts a notification only from a process in the service's own cgroup, and a
Docker container runs in docker's cgroup, not the unit's. So the unit's main process is
this relay: it binds a socket the container gets mounted, starts the command after
``--`` (``docker run ...``) with ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` set for it,
and forwards READY / STATUS / WATCHDOG / STOPPING datagrams to systemd's socket. It
exits with the command's status; SIGTERM / SIGINT / SIGHUP are passed on to it.

Stdlib only: it runs on the host's python3, where the package is not installed.
Usage: ``sd-notify-relay --socket /run/pianist/notify.sock [--owner UID] -- CMD...``
"""

import argparse
import os
import select
import signal
import socket
import subprocess
import sys

#: Longest datagram relayed; sd_notify messages are a few short lines.
MAX_DATAGRAM = 4096
#: Fields systemd must never take from the container (its PIDs mean nothing here).
DROPPED_FIELDS = ('MAINPID=', 'FDSTORE=', 'FDSTOREREMOVE=', 'FDNAME=', 'BARRIER=')
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _address(value):
    if value.startswith('@') and len(value) > 1:
        return b'\0' + value[1:].encode('utf-8')
    if value.startswith('/'):
        return value
    raise ValueError(f'unsupported NOTIFY_SOCKET {value!r}')


def filter_message(data):
    """Return the datagram without the fields the container may not set (or None)."""
    lines = [line for line in data.decode('utf-8', 'replace').split('\n')
             if line and '=' in line and not line.startswith(DROPPED_FIELDS)]
    return '\n'.join(lines).encode('utf-8') if lines else None


def child_environment(environ, socket_path, pid):
    """Return the command's environment: our socket, and the watchdog if it is ours."""
    env = dict(environ)
    env['NOTIFY_SOCKET'] = socket_path
    owner = env.pop('WATCHDOG_PID', '')
    if owner and owner != str(pid):
        env.pop('WATCHDOG_USEC', None)
    return env


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog='sd-notify-relay', description=__doc__.split('\n')[0])
    parser.add_argument('--socket', required=True, help='socket path to bind for the command')
    parser.add_argument('--owner', default='',
                        help='UID[:GID] that may send (the container user); default root only')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='-- command and arguments')
    args = parser.parse_args(argv)
    if args.command[:1] == ['--']:
        args.command = args.command[1:]
    if not args.command:
        parser.error('a command is required after --')
    return args


def _bind(path, owner):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(path)
    os.chmod(path, 0o600)
    if owner:
        uid, _sep, gid = owner.partition(':')
        os.chown(path, int(uid), int(gid) if gid else -1)
    return sock


def _drain(inbox, outbox, upstream):
    """Forward what the command sent just before it exited (e.g. STOPPING=1)."""
    inbox.setblocking(False)
    while True:
        try:
            data = filter_message(inbox.recv(MAX_DATAGRAM))
        except BlockingIOError:
            return
        if data is not None and upstream is not None:
            try:
                outbox.sendto(data, upstream)
            except OSError:
                return


def main(argv=None):
    """Run the command, relay its notifications; return its exit status."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    upstream_value = os.environ.get('NOTIFY_SOCKET', '')
    upstream = _address(upstream_value) if upstream_value else None
    inbox = _bind(args.socket, args.owner)
    outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    outbox.setblocking(False)
    child = subprocess.Popen(args.command,
                             env=child_environment(os.environ, args.socket, os.getpid()))

    def _forward_signal(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, _forward_signal)
    try:
        while child.poll() is None:
            try:
                readable, _w, _x = select.select([inbox], [], [], 0.5)
            except InterruptedError:
                continue
            if not readable:
                continue
            data = filter_message(inbox.recv(MAX_DATAGRAM))
            if data is None or upstream is None:
                continue
            try:
                outbox.sendto(data, upstream)
            except OSError as exc:
                print(f'sd-notify-relay: forwarding failed: {exc}', file=sys.stderr)
        _drain(inbox, outbox, upstream)
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait()
        inbox.close()
        outbox.close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
    code = child.returncode
    return 128 - code if code < 0 else code


if __name__ == '__main__':
    sys.exit(main())
