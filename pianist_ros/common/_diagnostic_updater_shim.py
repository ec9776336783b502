"""A small stand-in for ``diagnostic_updater`` where the package is not installable.

Implements the subset pianist_ros uses, with the same names and behaviour as the
ROS 2 ``diagnostic_updater`` (ros/diagnostics, ros2 branch): an ``Updater`` that
declares ``diagnostic_updater.period`` and ``diagnostic_updater.use_fqn``, runs its
tasks on a timer and publishes ``/diagnostics``; ``DiagnosticStatusWrapper`` with
``summary`` / ``mergeSummary`` / ``add``; function tasks; a frequency check.
Import it only through :mod:`pianist_ros.common.diagnostics`.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue


class DiagnosticStatusWrapper(DiagnosticStatus):
    """A DiagnosticStatus with the helper methods of diagnostic_updater."""

    def summary(self, *args) -> None:
        """Set level and message from two arguments or from another status."""
        if len(args) == 1:
            self.level = args[0].level
            self.message = args[0].message
        else:
            self.level, self.message = args[0], str(args[1])

    def clearSummary(self) -> None:  # noqa: N802 - diagnostic_updater API
        """Reset level to OK and the message to ''."""
        self.summary(DiagnosticStatus.OK, '')

    def mergeSummary(self, *args) -> None:  # noqa: N802 - diagnostic_updater API
        """Raise the level to the max of both and join non-OK messages with '; '."""
        if len(args) == 1:
            level, message = args[0].level, args[0].message
        else:
            level, message = args[0], str(args[1])
        if (level > DiagnosticStatus.OK) == (self.level > DiagnosticStatus.OK):
            if self.message and message:
                self.message = self.message + '; ' + message
            elif message:
                self.message = message
        elif level > self.level:
            self.message = message
        if level > self.level:
            self.level = level

    def add(self, key: str, value) -> None:
        """Append a key/value pair; the value is converted with ``str``."""
        if isinstance(value, bool):
            value = 'True' if value else 'False'
        self.values.append(KeyValue(key=str(key), value=str(value)))


class DiagnosticTask:
    """Base class of a named diagnostic check whose ``run(stat)`` fills a status."""

    def __init__(self, name: str):
        self.name = name

    def getName(self) -> str:  # noqa: N802 - diagnostic_updater API
        """Return the task name."""
        return self.name

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        """Fill ``stat`` and return it."""
        return stat


class FunctionDiagnosticTask(DiagnosticTask):
    """A task that calls ``fn(stat)``."""

    def __init__(self, name: str, fn):
        super().__init__(name)
        self.fn = fn

    def run(self, stat):
        """Call the function."""
        return self.fn(stat)


class FrequencyStatusParam:
    """Frequency bounds for :class:`FrequencyStatus`, as in diagnostic_updater."""

    def __init__(self, freq_bound: dict, tolerance: float = 0.1, window_size: int = 5):
        self.freq_bound = freq_bound
        self.tolerance = tolerance
        self.window_size = window_size


class FrequencyStatus(DiagnosticTask):
    """Check the rate of ``tick()`` calls against bounds over a sliding window."""

    def __init__(self, params: FrequencyStatusParam, name: str = 'FrequencyStatus'):
        super().__init__(name)
        self.params = params
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Reset the window."""
        with self.lock:
            now = time.monotonic()
            self.count = 0
            self.times = [now] * self.params.window_size
            self.seq_nums = [0] * self.params.window_size
            self.hist_indx = 0

    def tick(self) -> None:
        """Record one event."""
        with self.lock:
            self.count += 1

    def run(self, stat):
        """Report the frequency measured since ``window_size`` updates ago."""
        with self.lock:
            now = time.monotonic()
            events = self.count - self.seq_nums[self.hist_indx]
            window = now - self.times[self.hist_indx]
            freq = events / window if window > 0 else 0.0
            self.seq_nums[self.hist_indx] = self.count
            self.times[self.hist_indx] = now
            self.hist_indx = (self.hist_indx + 1) % self.params.window_size
            lo = self.params.freq_bound.get('min', 0.0)
            hi = self.params.freq_bound.get('max', float('inf'))
            tol = self.params.tolerance
            if events == 0:
                stat.summary(DiagnosticStatus.ERROR, 'No events recorded.')
            elif freq < lo * (1 - tol):
                stat.summary(DiagnosticStatus.WARN, 'Frequency too low.')
            elif freq > hi * (1 + tol):
                stat.summary(DiagnosticStatus.WARN, 'Frequency too high.')
            else:
                stat.summary(DiagnosticStatus.OK, 'Desired frequency met')
            stat.add('Events in window', events)
            stat.add('Events since startup', self.count)
            stat.add('Duration of window (s)', f'{window:.6f}')
            stat.add('Actual frequency (Hz)', f'{freq:.6f}')
        return stat


class Updater:
    """Run diagnostic tasks periodically and publish them on ``/diagnostics``."""

    def __init__(self, node, period: float = 1.0):
        self.node = node
        self.tasks: list[DiagnosticTask] = []
        self.lock = threading.Lock()
        self.hwid = ''
        self.publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 1)
        self.period = self._declare('diagnostic_updater.period', float(period))
        self.use_fqn = self._declare('diagnostic_updater.use_fqn', False)
        self.timer = node.create_timer(self.period, self.update)

    def _declare(self, name: str, default):
        if self.node.has_parameter(name):
            return self.node.get_parameter(name).value
        return self.node.declare_parameter(name, default).value

    def setHardwareID(self, hwid: str) -> None:  # noqa: N802 - diagnostic_updater API
        """Set the hardware id reported with every status."""
        self.hwid = hwid

    def add(self, *args) -> None:
        """Add a DiagnosticTask, or a name and a function taking the status."""
        task = args[0] if len(args) == 1 else FunctionDiagnosticTask(args[0], args[1])
        with self.lock:
            self.tasks.append(task)

    def removeByName(self, name: str) -> bool:  # noqa: N802 - diagnostic_updater API
        """Remove the first task called ``name``; return whether one was removed."""
        with self.lock:
            for i, task in enumerate(self.tasks):
                if task.name == name:
                    del self.tasks[i]
                    return True
        return False

    def update(self) -> None:
        """Run every task and publish (the timer calls this)."""
        self.force_update()

    def force_update(self) -> None:
        """Run every task now and publish the array."""
        statuses = []
        with self.lock:
            tasks = list(self.tasks)
        for task in tasks:
            stat = DiagnosticStatusWrapper()
            stat.name = task.name
            stat.level = DiagnosticStatus.ERROR
            stat.message = 'No message was set'
            stat.hardware_id = self.hwid
            try:
                stat = task.run(stat)
            except Exception as exc:  # noqa: BLE001 - a failing check is a status
                stat.summary(DiagnosticStatus.ERROR, f'diagnostic task failed: {exc!r}')
            statuses.append(stat)
        self.publish(statuses)

    def broadcast(self, level, message: str) -> None:
        """Publish ``level`` / ``message`` for every task (e.g. on shutdown)."""
        statuses = []
        with self.lock:
            tasks = list(self.tasks)
        for task in tasks:
            stat = DiagnosticStatusWrapper()
            stat.name = task.name
            stat.hardware_id = self.hwid
            stat.summary(level, message)
            statuses.append(stat)
        self.publish(statuses)

    def publish(self, statuses) -> None:
        """Prefix names with the node name and publish one DiagnosticArray."""
        if not isinstance(statuses, list):
            statuses = [statuses]
        prefix = (self.node.get_fully_qualified_name() if self.use_fqn
                  else self.node.get_name())
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        for stat in statuses:
            out = DiagnosticStatus(level=stat.level, name=f'{prefix}: {stat.name}',
                                   message=stat.message, hardware_id=stat.hardware_id,
                                   values=list(stat.values))
            array.status.append(out)
        self.publisher.publish(array)

    def destroy(self) -> None:
        """Cancel the timer and destroy the publisher."""
        self.node.destroy_timer(self.timer)
        self.node.destroy_publisher(self.publisher)
