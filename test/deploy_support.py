"""Test helpers for deployment tests: a fake systemd notify socket, frame publishers."""

from __future__ import annotations

import os
import socket
import threading
import time

from pianist_ros.common.systemd import parse_message


class NotifyListener:
    """Listen on a unix datagram socket the way systemd does; record every message.

    :param path: filesystem path to bind, or ``@name`` for an abstract socket.
    """

    def __init__(self, path: str):
        self.address = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(b'\0' + path[1:].encode() if path.startswith('@') else path)
        self._sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='notify-listener', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._messages.append((time.monotonic(), parse_message(data)))

    def messages(self) -> list[tuple[float, dict[str, str]]]:
        """Return ``(monotonic receive time, fields)`` for every message so far."""
        with self._lock:
            return list(self._messages)

    def times(self, key: str, value: str | None = None) -> list[float]:
        """Return receive times of messages carrying ``key`` (equal to ``value``)."""
        return [t for t, fields in self.messages()
                if key in fields and (value is None or fields[key] == value)]

    def statuses(self) -> list[str]:
        """Return every STATUS= text received, in order."""
        return [fields['STATUS'] for _t, fields in self.messages() if 'STATUS' in fields]

    def close(self) -> None:
        """Stop the thread and close (and unlink) the socket."""
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()
        if not self.address.startswith('@'):
            try:
                os.unlink(self.address)
            except FileNotFoundError:
                pass


def make_frame_publisher(context, namespace: str = ''):
    """Return a node publishing camera_info and hands/count at 20 Hz while ``.on``.

    Publishes exactly what the camera and hand_detector publish (types, names, QoS),
    so the monitor sees the same traffic it sees from the real nodes.
    """
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Int32

    from pianist_ros.common import topics

    class FramePublisher(Node):
        def __init__(self):
            super().__init__('fake_pipeline', context=context, namespace=namespace)
            self.on = True
            self.detector_on = True
            self.sent = 0
            self._info = self.create_publisher(CameraInfo, topics.CAMERA_INFO,
                                               topics.SENSOR_QOS)
            self._count = self.create_publisher(Int32, topics.HANDS_COUNT, topics.RESULT_QOS)
            self.create_timer(0.05, self._on_timer)

        def _on_timer(self) -> None:
            if not self.on:
                return
            msg = CameraInfo()
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.width, msg.height = 640, 480
            self._info.publish(msg)
            if self.detector_on:
                self._count.publish(Int32(data=2))
            self.sent += 1

    return FramePublisher()
