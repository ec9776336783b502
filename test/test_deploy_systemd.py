"""pianist_ros.common.systemd without ROS: addresses, WATCHDOG_USEC, real datagram sockets."""

import os
import socket
import uuid

import pytest

from deploy_support import NotifyListener
from pianist_ros.common.systemd import FlowWatchdog
from pianist_ros.common.systemd import format_message
from pianist_ros.common.systemd import MAX_STATUS_CHARS
from pianist_ros.common.systemd import Notifier
from pianist_ros.common.systemd import NotifyError
from pianist_ros.common.systemd import parse_message
from pianist_ros.common.systemd import socket_address
from pianist_ros.common.systemd import watchdog_interval
from support import wait_until


@pytest.mark.parametrize('value, expected', [
    ('/run/systemd/notify', '/run/systemd/notify'),
    ('@/org/freedesktop/systemd1/notify/123', b'\0/org/freedesktop/systemd1/notify/123'),
    ('@x', b'\0x'),
])
def test_socket_address_accepts_paths_and_abstract_names(value, expected):
    assert socket_address(value) == expected


@pytest.mark.parametrize('value', ['relative/sock', '@', 'vsock:2:1234', ''])
def test_socket_address_refuses_what_we_cannot_send_to(value):
    with pytest.raises(ValueError):
        socket_address(value)


@pytest.mark.parametrize('env, pid, expected', [
    ({}, 1, None),
    ({'WATCHDOG_USEC': '30000000'}, 1, 30.0),
    ({'WATCHDOG_USEC': '500000', 'WATCHDOG_PID': '42'}, 42, 0.5),
    ({'WATCHDOG_USEC': '500000', 'WATCHDOG_PID': '42'}, 43, None),  # inherited by a child
    ({'WATCHDOG_USEC': '0'}, 1, None),
    ({'WATCHDOG_USEC': '-5'}, 1, None),
    ({'WATCHDOG_USEC': 'soon'}, 1, None),
    ({'WATCHDOG_USEC': '1000', 'WATCHDOG_PID': 'x'}, 1, None),
])
def test_watchdog_interval_follows_sd_watchdog_enabled(env, pid, expected):
    assert watchdog_interval(env, pid=pid) == expected


def test_watchdog_interval_defaults_to_our_pid():
    env = {'WATCHDOG_USEC': '2000000', 'WATCHDOG_PID': str(os.getpid())}
    assert watchdog_interval(env) == 2.0


def test_format_message_round_trips_and_flattens_newlines():
    data = format_message({'READY': 1, 'STATUS': 'camera\n30 fps'})
    assert data == b'READY=1\nSTATUS=camera 30 fps'
    assert parse_message(data) == {'READY': '1', 'STATUS': 'camera 30 fps'}


@pytest.mark.parametrize('fields', [{}, {'A=B': 1}, {'X': 'y' * 5000}])
def test_format_message_refuses_bad_messages(fields):
    with pytest.raises(ValueError):
        format_message(fields)


def test_notifier_without_socket_is_a_silent_no_op():
    notifier = Notifier('')
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.sent == 0 and notifier.failed == 0


@pytest.mark.parametrize('abstract', [False, True], ids=['path', 'abstract'])
def test_notifier_sends_each_message_kind(tmp_path, abstract):
    address = f'@pianist-test-{uuid.uuid4().hex}' if abstract else str(tmp_path / 'notify')
    listener = NotifyListener(address)
    notifier = Notifier(address)
    try:
        assert notifier.ready('starting')
        assert notifier.status('x' * (MAX_STATUS_CHARS + 50))
        assert notifier.watchdog()
        assert notifier.stopping()
        assert wait_until(lambda: len(listener.messages()) == 4, 5.0)
        got = [fields for _t, fields in listener.messages()]
        assert got[0] == {'READY': '1', 'STATUS': 'starting'}
        assert got[1] == {'STATUS': 'x' * MAX_STATUS_CHARS}
        assert got[2] == {'WATCHDOG': '1'}
        assert got[3] == {'STOPPING': '1'}
        assert notifier.sent == 4
    finally:
        notifier.close()
        listener.close()


def test_notifier_reads_notify_socket_from_environment(tmp_path, monkeypatch):
    address = str(tmp_path / 'env-notify')
    listener = NotifyListener(address)
    monkeypatch.setenv('NOTIFY_SOCKET', address)
    notifier = Notifier()
    try:
        assert notifier.enabled and notifier.watchdog()
        assert wait_until(lambda: listener.times('WATCHDOG', '1'), 5.0)
    finally:
        notifier.close()
        listener.close()


def test_notifier_reports_a_missing_socket(tmp_path):
    notifier = Notifier(str(tmp_path / 'nobody-listens'))
    try:
        assert notifier.watchdog() is False
        assert notifier.failed == 1 and 'ENOENT' in notifier.last_error
        with pytest.raises(NotifyError):
            notifier.notify_or_raise(WATCHDOG=1)
    finally:
        notifier.close()


def test_notifier_never_blocks_on_a_full_queue(tmp_path):
    # A receiver that never reads: the kernel queue fills, sends must fail fast.
    address = str(tmp_path / 'full')
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    notifier = Notifier(address)
    try:
        results = [notifier.status('s' * 300) for _ in range(5000)]
        assert results[0] is True
        assert False in results
        assert 'EAGAIN' in notifier.last_error or 'EWOULDBLOCK' in notifier.last_error
    finally:
        notifier.close()
        receiver.close()


def test_flow_watchdog_ready_once_then_pets_only_while_every_stream_is_fresh():
    flow = FlowWatchdog(('camera', 'detector'), max_age_sec=1.0)
    assert flow.evaluate(0.0).stale == ('camera', 'detector')
    flow.seen('camera', 0.0)
    decision = flow.evaluate(0.1)
    assert not decision.ready and not decision.pet and decision.stale == ('detector',)
    flow.seen('detector', 0.2)
    first = flow.evaluate(0.3)
    assert first.ready and first.pet
    assert flow.evaluate(0.4) == type(first)(ready=False, pet=True, stale=())
    # The camera hangs; the detector keeps answering (e.g. on old frames): no pet.
    flow.seen('detector', 1.5)
    decision = flow.evaluate(1.6)
    assert not decision.pet and decision.stale == ('camera',)
    flow.seen('camera', 1.7)
    assert flow.evaluate(1.8).pet and not flow.evaluate(1.8).ready


def test_flow_watchdog_validates_arguments():
    with pytest.raises(ValueError):
        FlowWatchdog((), 1.0)
    with pytest.raises(ValueError):
        FlowWatchdog(('camera',), 0.0)
    with pytest.raises(KeyError):
        FlowWatchdog(('camera',), 1.0).seen('detector', 0.0)
