"""Real-rclpy tests of the shared glue: parameter declaration and the diagnostics shim."""

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from pianist_ros.common import diagnostics
from pianist_ros.common.params import declare
from pianist_ros.common.params import Param
from pianist_ros.common.params import values
from support import spin_until

SCHEMA = (
    Param('fps', 30.0, 'frames per second', min_value=1.0, max_value=120.0),
    Param('backend', 'thread', 'backend', choices=('thread', 'process')),
    Param('reconnect.max_attempts', 0, 'attempts, 0 = forever', min_value=0),
)


def test_declare_validates_sets_and_reads_values(ros_context):
    node = Node('params_under_test', context=ros_context)
    try:
        declare(node, SCHEMA)
        assert values(node, SCHEMA) == {'fps': 30.0, 'backend': 'thread',
                                        'reconnect_max_attempts': 0}
        desc = node.describe_parameter('fps')
        assert desc.description == 'frames per second'
        assert desc.floating_point_range[0].to_value == 120.0
        results = node.set_parameters([Parameter('fps', value=500.0)])
        assert not results[0].successful
        results = node.set_parameters([Parameter('backend', value='gpu')])
        assert not results[0].successful and 'one of' in results[0].reason
        assert node.get_parameter('backend').value == 'thread'
        assert node.set_parameters([Parameter('fps', value=15.0)])[0].successful
        assert values(node, SCHEMA)['fps'] == 15.0
    finally:
        node.destroy_node()


def test_invalid_override_is_refused_at_declare(ros_context):
    node = Node('params_bad_override', context=ros_context,
                parameter_overrides=[Parameter('backend', value='gpu')])
    try:
        with pytest.raises(InvalidParameterValueException):
            declare(node, SCHEMA)
    finally:
        node.destroy_node()


def test_updater_publishes_named_statuses(ros_context):
    node = Node('diag_source', context=ros_context)
    listener = Node('diag_listener', context=ros_context)
    received = []
    listener.create_subscription(DiagnosticArray, '/diagnostics', received.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        updater = diagnostics.make_updater(node, 'unit-test-hw', period=0.2)

        def check(stat):
            stat.summary(diagnostics.WARN, 'low fps')
            stat.add('fps', 3.5)
            return stat

        def broken(_stat):
            raise RuntimeError('sensor unplugged')

        updater.add('check', check)
        updater.add('broken', broken)
        assert node.has_parameter('diagnostic_updater.period')

        def got_both():
            names = {s.name: s for a in received for s in a.status}
            return 'diag_source: check' in names and 'diag_source: broken' in names

        assert spin_until(executor, got_both, timeout=10.0)
        statuses = {s.name: s for a in received for s in a.status}
        check_status = statuses['diag_source: check']
        assert check_status.level == diagnostics.WARN
        assert check_status.hardware_id == 'unit-test-hw'
        assert {kv.key: kv.value for kv in check_status.values}['fps'] == '3.5'
        broken_status = statuses['diag_source: broken']
        assert broken_status.level == diagnostics.ERROR
        assert 'sensor unplugged' in broken_status.message
        assert diagnostics.level_name(broken_status.level) == 'ERROR'
    finally:
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()


def test_status_wrapper_merge_summary():
    stat = diagnostics.DiagnosticStatusWrapper()
    stat.summary(diagnostics.OK, '')
    stat.mergeSummary(diagnostics.WARN, 'fps low')
    stat.mergeSummary(diagnostics.OK, 'fine')
    stat.mergeSummary(diagnostics.WARN, 'disk low')
    assert stat.level == diagnostics.WARN
    assert stat.message == 'fps low; disk low'
    stat.mergeSummary(diagnostics.ERROR, 'camera lost')
    # Same semantics as diagnostic_updater: non-OK messages accumulate.
    assert stat.level == diagnostics.ERROR
    assert stat.message == 'fps low; disk low; camera lost'
