"""Test helpers of the camera area: fake clock, hanging source, MJPEG server, ROS harness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from pianist_ros.camera.sources import FrameSource
from pianist_ros.camera.sources import SourceOptions
from pianist_ros.camera.sources import SourceSpec
from support import REPO
from support import start_process
from support import stop_process
from support import wait_until

MJPEG_SERVER = os.path.join(REPO, 'test', 'fixtures', 'mjpeg_server.py')


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 100.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class HangingSource(FrameSource):
    """An in-memory source whose read blocks like an unplugged USB camera.

    Delivers ``good_frames`` frames, then every ``read()`` blocks until ``release`` is
    set (the driver call that never returns). Counts open handles class-wide, so a test
    can prove every handle is closed once the hung calls return.
    """

    kind = 'fake'
    open_handles = 0
    _count_lock = threading.Lock()

    def __init__(self, release: threading.Event, good_frames: int = 3):
        super().__init__(SourceSpec('fake', 'hanging'), SourceOptions())
        self._release = release
        self._good = good_frames
        self._held = False

    def _open(self) -> None:
        with HangingSource._count_lock:
            HangingSource.open_handles += 1
        self._held = True

    def _read(self):
        if self._good > 0:
            self._good -= 1
            time.sleep(0.01)
            return np.zeros((8, 8, 3), np.uint8)
        self._release.wait()  # deliberately ignores interrupt(): a stuck driver
        return None

    def _close(self) -> None:
        if self._held:
            self._held = False
            with HangingSource._count_lock:
                HangingSource.open_handles -= 1


class ScriptedSource(FrameSource):
    """An in-memory source that returns a scripted list of reads, then repeats the last."""

    kind = 'fake'

    def __init__(self, script: list):
        super().__init__(SourceSpec('fake', 'scripted'), SourceOptions())
        self._script = list(script)

    def _open(self) -> None:
        pass

    def _read(self):
        time.sleep(0.005)
        item = self._script.pop(0) if len(self._script) > 1 else self._script[0]
        return item() if callable(item) else item

    def _close(self) -> None:
        pass


class MjpegServer:
    """The MJPEG test camera as a separate process on a fixed 127.0.0.1 port."""

    def __init__(self, port: int, log_dir: str, fps: float = 15.0):
        self.port = port
        self.fps = fps
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """Return the stream URL."""
        return f'http://127.0.0.1:{self.port}/stream.mjpg'

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it prints READY."""
        self.starts += 1
        log = os.path.join(self.log_dir, f'mjpeg_{self.starts}.log')
        self.proc = start_process([sys.executable, MJPEG_SERVER, '--port', str(self.port),
                                   '--fps', str(self.fps), '--max-frames', '15'],
                                  log_path=log)
        if not wait_until(lambda: _ready(log) or self.proc.poll() is not None, timeout):
            raise RuntimeError(f'MJPEG server did not start in {timeout} s')
        if self.proc.poll() is not None:
            with open(log, encoding='utf-8', errors='replace') as handle:
                raise RuntimeError(f'MJPEG server exited: {handle.read()[-2000:]}')

    def kill(self) -> None:
        """Kill the server abruptly (the camera dies; connections reset)."""
        if self.proc is not None:
            stop_process(self.proc, sig=signal.SIGKILL)
            self.proc = None

    def stall(self) -> None:
        """Keep connections open but stop sending."""
        os.kill(self.proc.pid, signal.SIGUSR1)

    def resume(self) -> None:
        """Send frames again after a stall."""
        os.kill(self.proc.pid, signal.SIGUSR2)

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.proc is not None:
            stop_process(self.proc, timeout=5.0)
            self.proc = None


def _ready(log: str) -> bool:
    try:
        with open(log, encoding='utf-8', errors='replace') as handle:
            return 'READY' in handle.read()
    except FileNotFoundError:
        return False


def fd_targets() -> list[str]:
    """Return what every open file descriptor of this process points to."""
    out = []
    for name in os.listdir('/proc/self/fd'):
        try:
            out.append(os.readlink(f'/proc/self/fd/{name}'))
        except OSError:
            pass
    return out


def camera_threads() -> list[str]:
    """Return the names of live capture threads (supervisor and sessions)."""
    return [t.name for t in threading.enumerate()
            if t.name.startswith(('camera-capture', 'camera-session'))]


class CameraHarness:
    """A CameraNode plus an observer node spinning on a background executor.

    The observer records ``camera/state``, counts ``camera/image_raw`` frames and
    drives the camera through its real ``change_state`` service over DDS.
    """

    _instances = 0

    def __init__(self, context, overrides: dict, namespace: str | None = None):
        from lifecycle_msgs.srv import ChangeState
        from lifecycle_msgs.srv import GetState
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from pianist_ros.camera.node import CameraNode
        from pianist_ros.common import topics

        if namespace is None:
            # A fresh namespace per harness: no test ever sees another test's endpoints.
            CameraHarness._instances += 1
            namespace = f'/camtest{os.getpid()}_{CameraHarness._instances}'
        self.lock = threading.Lock()
        self.states: list[str] = []
        self.frames = 0
        self.last_image = None
        params = [Parameter(k, value=v) for k, v in overrides.items()]
        self.camera = CameraNode(context=context, namespace=namespace,
                                 parameter_overrides=params)
        self.observer = Node('camera_observer', context=context, namespace=namespace)
        self.observer.create_subscription(String, topics.CAMERA_STATE, self._on_state,
                                          topics.LATCHED_QOS)
        self.observer.create_subscription(Image, topics.IMAGE_RAW, self._on_image,
                                          topics.SENSOR_QOS)
        self.change_state = self.observer.create_client(ChangeState, 'camera/change_state')
        self.get_state = self.observer.create_client(GetState, 'camera/get_state')
        # One thread, as in pianist-bringup: rclpy's MultiThreadedExecutor busy-polls
        # and starves the capture threads of the GIL (stalls of over a second seen).
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.camera)
        self.executor.add_node(self.observer)
        self._thread = threading.Thread(target=self.executor.spin, name='harness-spin',
                                        daemon=True)
        self._thread.start()

    def _on_state(self, msg) -> None:
        with self.lock:
            self.states.append(msg.data)

    def _on_image(self, msg) -> None:
        with self.lock:
            self.frames += 1
            self.last_image = msg

    @property
    def state(self) -> str:
        """Return the last state received on camera/state."""
        with self.lock:
            return self.states[-1] if self.states else ''

    def frame_count(self) -> int:
        """Return frames received so far."""
        with self.lock:
            return self.frames

    def wait_state(self, name: str, timeout: float) -> bool:
        """Wait until camera/state says ``name``."""
        return wait_until(lambda: self.state == name, timeout)

    def wait_frames(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` more frames arrived."""
        target = self.frame_count() + count
        return wait_until(lambda: self.frame_count() >= target, timeout)

    def transition(self, transition_id: int, timeout: float = 15.0) -> bool:
        """Request a lifecycle transition through the change_state service."""
        from lifecycle_msgs.srv import ChangeState

        if not self.change_state.wait_for_service(timeout_sec=timeout):
            raise RuntimeError('camera/change_state is not available')
        request = ChangeState.Request()
        request.transition.id = transition_id
        future = self.change_state.call_async(request)
        if not wait_until(future.done, timeout):
            raise RuntimeError(f'transition {transition_id} got no answer in {timeout} s')
        return future.result().success

    def lifecycle_state(self, timeout: float = 10.0) -> str:
        """Return the lifecycle state label through the get_state service."""
        from lifecycle_msgs.srv import GetState

        if not self.get_state.wait_for_service(timeout_sec=timeout):
            raise RuntimeError('camera/get_state is not available')
        future = self.get_state.call_async(GetState.Request())
        if not wait_until(future.done, timeout):
            raise RuntimeError('get_state got no answer')
        return future.result().current_state.label

    def close(self) -> None:
        """Stop spinning and destroy both nodes."""
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(5.0)
        self.camera.destroy_node()
        self.observer.destroy_node()
