"""``pianist-ota`` as a real process: killed with SIGKILL mid-update, restarted, resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import yaml

from ota_support import fake_systemctl
from ota_support import FleetServers
from ota_support import git
from ota_support import make_repos
from ota_support import restart_calls
from pianist_ros.ota.manifest import load_private_key
from pianist_ros.ota.state import Phase
from pianist_ros.ota.state import StateStore
from support import REPO
from support import script
from support import start_process
from support import stop_process
from support import wait_until

# The venv's editable install does not map pianist_ros (its finder MAPPING is empty), so
# console scripts only import the package with the source tree on PYTHONPATH.
ENV = {'PYTHONPATH': os.pathsep.join(p for p in (REPO, os.environ.get('PYTHONPATH')) if p)}
FULL_ENV = dict(os.environ, **ENV)


@pytest.fixture
def device(tmp_path):
    """Repositories, servers, a release key made by ``pianist-ota keygen`` and a config."""
    repos = make_repos(str(tmp_path))
    servers = FleetServers(repos.device)
    key_path = str(tmp_path / 'release.pem')
    out = subprocess.run([script('pianist-ota'), 'keygen', '--out', key_path],
                         capture_output=True, text=True, timeout=60, check=True, env=FULL_ENV)
    public = out.stdout.strip()
    assert len(public) == 64 and oct(os.stat(key_path).st_mode & 0o777) == '0o600'
    config = str(tmp_path / 'ota.yaml')
    params = {
        'manifest_url': servers.main.url('/manifest.json'), 'public_key': public,
        'repo_dir': repos.device, 'state_dir': str(tmp_path / 'state'),
        'report_url': servers.reports.url('/report'), 'device_id': 'jetson-0042',
        'request_timeout_sec': 2.0, 'startup_jitter_sec': 0.0, 'poll_interval_sec': 1.0,
        'poll_jitter_sec': 0.0,
        'health': {'url': servers.main.url('/health'), 'timeout_sec': 2.0,
                   'poll_interval_sec': 0.05, 'ok_streak': 2},
    }
    with open(config, 'w', encoding='utf-8') as handle:
        yaml.safe_dump({'ota_manager': {'ros__parameters': params}}, handle)
    try:
        yield {'repos': repos, 'servers': servers, 'key': key_path, 'config': config,
               'log': str(tmp_path / 'systemctl.log'), 'state': str(tmp_path / 'state'),
               'tmp': tmp_path, 'public': public}
    finally:
        servers.close()


def _offer(dev, version: str, sequence: int) -> None:
    """Sign the release with ``pianist-ota sign`` and serve it."""
    path = str(dev['tmp'] / f'manifest-{sequence}.json')
    subprocess.run([script('pianist-ota'), 'sign', '--key', dev['key'], '--version', version,
                    '--git-hash', dev['repos'].hashes[version], '--sequence', str(sequence),
                    '--expires-days', '1', '--out', path], check=True, timeout=60, env=FULL_ENV)
    with open(path, 'rb') as handle:
        dev['servers'].set_manifest(handle.read())


def _check_args(dev, **restart) -> list[str]:
    return [script('pianist-ota'), 'check', '--config', dev['config'], '--set',
            'restart_command=' + fake_systemctl(dev['log'], dev['repos'].device, **restart)]


def _run_and_kill_at_restart(dev, restarts_before: int) -> None:
    """Run a check whose restart hangs (as systemd restarting our own unit); SIGKILL it."""
    proc = start_process(_check_args(dev, sleep=60.0),
                         log_path=str(dev['tmp'] / f'kill-{restarts_before}.log'), env=ENV)
    try:
        assert wait_until(lambda: len(restart_calls(dev['log'])) > restarts_before, 60.0), \
            'the manager never reached the restart'
    finally:
        assert stop_process(proc, sig=signal.SIGKILL) == -signal.SIGKILL


def _check(dev) -> dict:
    out = subprocess.run(_check_args(dev), capture_output=True, text=True, timeout=120,
                         env=FULL_ENV)
    assert out.stdout.strip(), out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_killed_during_restart_resumes_and_commits(device):
    _offer(device, '1.10.0', 100)
    _run_and_kill_at_restart(device, 0)
    state = StateStore(device['state']).load()
    assert state.phase == Phase.HEALTH_CHECK
    assert state.target_hash == device['repos'].hashes['1.10.0']
    assert device['servers'].report_bodies() == []
    result = _check(device)
    assert result['result'] == 'updated', result
    assert git(device['repos'].device, 'rev-parse', 'HEAD') == device['repos'].hashes['1.10.0']
    # No second restart: the kill stood for the restart, the resumed check only gates.
    assert len(restart_calls(device['log'])) == 1
    assert [r['result'] for r in device['servers'].report_bodies()] == ['updated']


def test_killed_twice_during_a_bad_update_still_rolls_back(device):
    before = device['repos'].hashes['1.9.0']
    _offer(device, '1.11.0', 100)
    _run_and_kill_at_restart(device, 0)
    # Resumed: health fails, the rollback restart is killed too.
    _run_and_kill_at_restart(device, 1)
    state = StateStore(device['state']).load()
    assert state.phase == Phase.ROLLBACK_HEALTH_CHECK
    assert git(device['repos'].device, 'rev-parse', 'HEAD') == before
    result = _check(device)
    assert result['result'] == 'rolled_back', result
    assert [c['head'] for c in restart_calls(device['log'])] == [
        device['repos'].hashes['1.11.0'], before]
    reports = device['servers'].report_bodies()
    assert [r['result'] for r in reports] == ['rolled_back']
    assert 'health check failed' in reports[0]['error']


def test_run_loop_updates_and_stops_on_sigterm(device):
    _offer(device, '1.10.0', 7)
    args = [script('pianist-ota'), 'run', '--config', device['config'], '--set',
            'restart_command=' + fake_systemctl(device['log'], device['repos'].device)]
    proc = start_process(args, log_path=str(device['tmp'] / 'run.log'), env=ENV)
    try:
        assert wait_until(lambda: device['servers'].report_bodies(), 60.0)
        assert device['servers'].report_bodies()[0]['result'] == 'updated'
        # Keeps polling at poll_interval_sec.
        polls = device['servers'].main.count('/manifest.json')
        assert wait_until(lambda: device['servers'].main.count('/manifest.json') > polls, 30)
    finally:
        assert stop_process(proc, sig=signal.SIGTERM) == 0


def test_sign_and_verify_tools(device):
    _offer(device, '1.10.0', 3)
    path = str(device['tmp'] / 'manifest-3.json')
    out = subprocess.run([script('pianist-ota'), 'verify', '--public-key', device['public'],
                          path], capture_output=True, text=True, timeout=60, env=FULL_ENV)
    assert out.returncode == 0 and json.loads(out.stdout)['sequence'] == 3
    assert load_private_key(device['key'])
    other = str(device['tmp'] / 'other.pem')
    other_pub = subprocess.run([script('pianist-ota'), 'keygen', '--out', other],
                               capture_output=True, text=True, check=True,
                               env=FULL_ENV).stdout.strip()
    out = subprocess.run([script('pianist-ota'), 'verify', '--public-key', other_pub, path],
                         capture_output=True, text=True, timeout=60, env=FULL_ENV)
    assert out.returncode == 2 and 'not signed by the pinned key' in out.stderr
    out = subprocess.run([script('pianist-ota'), 'verify', '--public-key', '/nonexistent',
                          path], capture_output=True, text=True, timeout=60, env=FULL_ENV)
    assert out.returncode != 0 and 'public key file /nonexistent does not exist' in out.stderr
    out = subprocess.run([script('pianist-ota'), 'check', '--config', device['config'],
                          '--set', 'public_key=/etc/pianist/release.pub'],
                         capture_output=True, text=True, timeout=60, env=FULL_ENV)
    assert out.returncode != 0
    assert 'public key file /etc/pianist/release.pub does not exist' in out.stderr
    out = subprocess.run([script('pianist-ota'), 'status', '--config', device['config']],
                         capture_output=True, text=True, timeout=60, env=FULL_ENV)
    assert out.returncode == 0 and 'report_error' in json.loads(out.stdout)
