"""The ota_manager node over real DDS: diagnostics 'ota' and the ~/check_now service."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Log
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from ota_support import fake_systemctl
from ota_support import FleetServers
from ota_support import git
from ota_support import make_repos
from ota_support import manifest_for
from ota_support import public_hex
from ota_support import restart_calls
from pianist_ros.ota.manifest import generate_private_key
from pianist_ros.ota.node import OtaManagerNode
from support import spin_until


def _param(name, value):
    return Parameter(name, value=value)


def test_node_publishes_diagnostics_and_updates_on_check_now(ros_context, tmp_path):
    key = generate_private_key()
    repos = make_repos(str(tmp_path))
    servers = FleetServers(repos.device)
    log = str(tmp_path / 'systemctl.log')
    overrides = [
        _param('manifest_url', servers.main.url('/manifest.json')),
        _param('public_key', public_hex(key)),
        _param('repo_dir', repos.device),
        _param('state_dir', str(tmp_path / 'state')),
        _param('restart_command', fake_systemctl(log, repos.device)),
        _param('report_url', servers.reports.url('/report')),
        _param('health.url', servers.main.url('/health')),
        _param('health.timeout_sec', 5.0),
        _param('health.poll_interval_sec', 0.05),
        _param('health.ok_streak', 2),
        _param('device_id', 'jetson-ros'),
        # Far in the future: only ~/check_now can start the check in this test.
        _param('startup_jitter_sec', 3600.0),
        _param('poll_interval_sec', 3600.0),
    ]
    listener = Node('ota_diag_listener', context=ros_context)
    # Subscribed before the node exists, so its start line is not missed.
    logs = []
    listener.create_subscription(
        Log, '/rosout', lambda m: logs.append(m.msg) if m.name == 'ota_manager' else None, 100)
    node = OtaManagerNode(context=ros_context, parameter_overrides=overrides)
    statuses = []

    def on_diagnostics(msg: DiagnosticArray) -> None:
        statuses.extend(s for s in msg.status if s.name == 'ota_manager: ota')

    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    client = listener.create_client(Trigger, 'ota_manager/check_now')
    executor = MultiThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        servers.set_manifest(manifest_for(key, '1.10.0', repos.hashes['1.10.0'], 10))

        def last_values():
            return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}

        assert spin_until(executor, lambda: bool(statuses), 20.0), 'no ota diagnostics'
        first = last_values()
        assert first['current_version'] == '' and first['last_result'] == ''
        assert first['pending_reports'] == '0' and first['phase'] == 'idle'
        assert statuses[-1].hardware_id
        assert servers.main.count('/manifest.json') == 0

        assert spin_until(executor, client.service_is_ready, 20.0)
        future = client.call_async(Trigger.Request())
        assert spin_until(executor, future.done, 20.0)
        assert future.result().success

        def updated() -> bool:
            return last_values().get('last_result') == 'updated'

        assert spin_until(executor, updated, 60.0), last_values()
        values = last_values()
        assert values['current_version'] == '1.10.0'
        assert values['current_hash'] == repos.hashes['1.10.0']
        assert float(values['last_check_time']) > 0
        assert statuses[-1].level == b'\x00'
        assert git(repos.device, 'rev-parse', 'HEAD') == repos.hashes['1.10.0']
        assert len(restart_calls(log)) == 1
        assert [r['result'] for r in servers.report_bodies()] == ['updated']
        # The manager's own log lines reach the ROS log (rosout, journal).
        assert spin_until(executor, lambda: any(
            m.startswith('OTA check: updated') for m in logs), 10.0), logs
        assert any(m.startswith('OTA checker started: manifest http') for m in logs), logs
    finally:
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
        servers.close()


def test_node_without_configuration_is_idle_but_reports(ros_context, tmp_path):
    node = OtaManagerNode(context=ros_context, parameter_overrides=[
        _param('state_dir', str(tmp_path)), _param('repo_dir', str(tmp_path))])
    listener = Node('ota_diag_listener2', context=ros_context)
    statuses = []
    listener.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda m: statuses.extend(s for s in m.status if s.name == 'ota_manager: ota'), 10)
    executor = MultiThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        assert spin_until(executor, lambda: bool(statuses), 20.0)
        assert statuses[-1].level == b'\x00'
        assert 'disabled' in statuses[-1].message
    finally:
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
