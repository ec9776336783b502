"""OTA logic with real parts: git repositories in temp dirs, HTTP on 127.0.0.1, files.

No rclpy here. The manager runs against an origin/device pair of real repositories,
a manifest + health server and a report server, and a recording stand-in systemctl.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
import random
import threading
import time

import pytest

from ota_support import fake_systemctl
from ota_support import FleetServers
from ota_support import git
from ota_support import LocalServer
from ota_support import make_repos
from ota_support import manifest_for
from ota_support import public_hex
from ota_support import Reply
from ota_support import Repos
from ota_support import restart_calls
from pianist_ros.ota.cli import load_config
from pianist_ros.ota.config import make_config
from pianist_ros.ota.errors import ExpiredError
from pianist_ros.ota.errors import FetchError
from pianist_ros.ota.errors import FetchTimeoutError
from pianist_ros.ota.errors import HttpStatusError
from pianist_ros.ota.errors import ManifestError
from pianist_ros.ota.errors import ReplayError
from pianist_ros.ota.errors import SignatureError
from pianist_ros.ota.errors import TooLargeError
from pianist_ros.ota.fetcher import UrllibFetcher
from pianist_ros.ota.manager import OtaManager
from pianist_ros.ota.manifest import canonical_json
from pianist_ros.ota.manifest import cohort_bucket
from pianist_ros.ota.manifest import generate_private_key
from pianist_ros.ota.manifest import load_public_key
from pianist_ros.ota.manifest import sign
from pianist_ros.ota.manifest import verify
from pianist_ros.ota.state import OtaState
from pianist_ros.ota.state import Phase
from pianist_ros.ota.state import StateStore
from pianist_ros.ota.versions import decide
from pianist_ros.ota.versions import Decision
from support import free_port

KEY = generate_private_key()
OTHER_KEY = generate_private_key()
PUB = load_public_key(public_hex(KEY))


# ---- versions ----------------------------------------------------------------------

@pytest.mark.parametrize('current,offered,expected', [
    ('1.9.0', '1.10.0', Decision.UPGRADE),
    ('1.10.0', '1.9.0', Decision.DOWNGRADE),
    ('1.0', '1.0.0', Decision.SAME),
    ('v1.2.0', '1.2.0', Decision.SAME),
    ('1.0.0', '1.0.1', Decision.UPGRADE),
    ('1.1.0rc1', '1.1.0', Decision.UPGRADE),
    ('1.1.0', '1.1.0rc1', Decision.DOWNGRADE),
    ('1.0.0', '1.1.0rc1', Decision.PRERELEASE_SKIPPED),
    ('1.0.0', '1.1.0.dev3', Decision.PRERELEASE_SKIPPED),
    ('1.1.0a1', '1.1.0b1', Decision.PRERELEASE_SKIPPED),
    (None, '0.1.0', Decision.UPGRADE),
])
def test_versions_compare_as_versions(current, offered, expected):
    assert decide(current, offered) is expected


def test_prerelease_allowed_and_invalid_version():
    assert decide('1.0.0', '1.1.0rc1', allow_prerelease=True) is Decision.UPGRADE
    with pytest.raises(ManifestError):
        decide('1.0.0', 'latest')


# ---- manifest verification -----------------------------------------------------------

HASH = 'a' * 40


def _raw(envelope) -> bytes:
    return json.dumps(envelope).encode()


def _tampered():
    env = manifest_for(KEY, '1.0.1', HASH, 5)
    env['signed']['git_hash'] = 'b' * 40
    return env


def _wrong_key():
    return manifest_for(OTHER_KEY, '1.0.1', HASH, 5)


def _foreign_keyid():
    env = manifest_for(KEY, '1.0.1', HASH, 5)
    env['signatures'][0]['sig'] = manifest_for(OTHER_KEY, '1.0.1', HASH, 5)[
        'signatures'][0]['sig']
    return env


def _resigned(**changes):
    """Sign a manifest whose fields were changed after build_signed's own checks."""
    signed = dict(manifest_for(KEY, '1.0.1', HASH, 5)['signed'], **changes)
    return sign(signed, KEY)


@pytest.mark.parametrize('make,error', [
    (lambda: {'signed': manifest_for(KEY, '1.0.1', HASH, 5)['signed']}, SignatureError),
    (lambda: {**manifest_for(KEY, '1.0.1', HASH, 5), 'signatures': []}, SignatureError),
    (_wrong_key, SignatureError),
    (_tampered, SignatureError),
    (_foreign_keyid, SignatureError),
    (lambda: manifest_for(KEY, '1.0.1', HASH, 5, expires_in=-10), ExpiredError),
    (lambda: manifest_for(KEY, '1.0.1', HASH, 3), ReplayError),
    (lambda: manifest_for(KEY, '1.0.2', HASH, 4), ReplayError),
    (lambda: _resigned(git_hash=HASH[:39]), ManifestError),
    (lambda: _resigned(version='latest'), ManifestError),
    (lambda: _resigned(sequence='6'), ManifestError),
    (lambda: _resigned(_type='something-else'), ManifestError),
    (lambda: _resigned(rollout_percent=101), ManifestError),
    (lambda: _resigned(expires='2020-01-01T00:00:00'), ManifestError),
], ids=['unsigned', 'empty-signatures', 'wrong-key', 'tampered', 'bad-sig', 'expired',
        'replay-older-sequence', 'same-sequence-other-content', 'short-hash',
        'bad-version', 'string-sequence', 'wrong-type', 'percent-range', 'naive-time'])
def test_verify_rejects(make, error):
    seen = verify(_raw(manifest_for(KEY, '1.0.0', HASH, 4)), PUB, time.time())
    with pytest.raises(error):
        verify(_raw(make()), PUB, time.time(), min_sequence=4, seen_digest=seen.digest)


def test_verify_accepts_and_is_idempotent_for_the_same_manifest():
    raw = _raw(manifest_for(KEY, '1.0.1', HASH, 5))
    first = verify(raw, PUB, time.time())
    again = verify(raw, PUB, time.time(), min_sequence=5, seen_digest=first.digest)
    assert (again.version, again.git_hash, again.sequence) == ('1.0.1', HASH, 5)


@pytest.mark.parametrize('raw', [
    b'not json', b'[]', b'{"signed": 1}', '{"signed": {"a": 1}, "signed": {}}'.encode(),
    b'\xff\xfe', b'{"signed": {"x": NaN}, "signatures": [{"keyid": "x", "sig": "y"}]}',
], ids=['garbage', 'array', 'signed-not-object', 'duplicate-keys', 'not-utf8', 'nan'])
def test_verify_rejects_malformed(raw):
    with pytest.raises(ManifestError):
        verify(raw, PUB, 0.0)


def test_missing_fields_are_rejected_even_when_signed():
    signed = dict(manifest_for(KEY, '1.0.1', HASH, 5)['signed'])
    del signed['git_hash']
    with pytest.raises(ManifestError, match='missing fields: git_hash'):
        verify(_raw(sign(signed, KEY)), PUB, 0.0)
    with pytest.raises(ManifestError):
        canonical_json({'x': 1.5})


def test_cohort_buckets_are_uniform_and_monotone():
    buckets = [cohort_bucket(f'jetson-{i:04d}', '1.2.0') for i in range(1000)]
    share = sum(b < 10.0 for b in buckets) / len(buckets)
    assert 0.06 < share < 0.14
    assert all(0.0 <= b < 100.0 for b in buckets)


# ---- HTTP fetching -------------------------------------------------------------------

@pytest.fixture
def server():
    srv = LocalServer({})
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.parametrize('reply,error', [
    (Reply(404, b'nope'), HttpStatusError),
    (Reply(500, b'oops'), HttpStatusError),
    (Reply(200, b'x' * 5000), TooLargeError),
    (Reply(200, b'x' * 5000, headers={'Content-Length': None,
                                      'Transfer-Encoding': None}), TooLargeError),
    (Reply(200, b'{}', delay=2.0), FetchTimeoutError),
    (Reply(200, b'x' * 40, drip=0.1), FetchTimeoutError),
], ids=['404', '500', 'oversized', 'oversized-no-length', 'slow-headers', 'slow-drip'])
def test_fetch_errors_are_wrapped(server, reply, error):
    server.routes['/m'] = lambda _m, _b: reply
    with pytest.raises(error):
        UrllibFetcher().fetch(server.url('/m'), timeout=1.0, max_bytes=1024)


def test_fetch_unreachable_and_bad_scheme():
    with pytest.raises(FetchError):
        UrllibFetcher().fetch(f'http://127.0.0.1:{free_port()}/m', timeout=2.0, max_bytes=10)
    with pytest.raises(FetchError, match='only http'):
        UrllibFetcher().fetch('file:///etc/passwd', timeout=2.0, max_bytes=10)


# ---- the manager against real git and HTTP ---------------------------------------------

@dataclass
class Env:
    """One device under test."""

    repos: Repos
    servers: FleetServers
    state_dir: str
    log: str
    overrides: dict

    def manager(self, **overrides) -> OtaManager:
        values = dict(self.overrides)
        values.update(overrides)
        return OtaManager(make_config(values))

    def head(self) -> str:
        return git(self.repos.device, 'rev-parse', 'HEAD')

    def offer(self, version: str, sequence: int, **kwargs) -> None:
        self.servers.set_manifest(manifest_for(KEY, version, self.repos.hashes[version],
                                               sequence, **kwargs))


@pytest.fixture
def env(tmp_path):
    repos = make_repos(str(tmp_path))
    servers = FleetServers(repos.device)
    log = str(tmp_path / 'systemctl.log')
    overrides = {
        'manifest_url': servers.main.url('/manifest.json'),
        'public_key': public_hex(KEY),
        'repo_dir': repos.device,
        'state_dir': str(tmp_path / 'state'),
        'restart_command': fake_systemctl(log, repos.device),
        'health.url': servers.main.url('/health'),
        'health.timeout_sec': 2.0,
        'health.poll_interval_sec': 0.05,
        'health.ok_streak': 2,
        'report_url': servers.reports.url('/report'),
        'request_timeout_sec': 1.0,
        'device_id': 'jetson-0001',
    }
    try:
        yield Env(repos, servers, str(tmp_path / 'state'), log, overrides)
    finally:
        servers.close()


def test_newer_version_is_installed_restarted_and_reported(env):
    before = env.head()
    env.offer('1.10.0', 10)
    outcome = env.manager().check_once()
    assert outcome.result == 'updated', outcome
    assert env.head() == env.repos.hashes['1.10.0']
    calls = restart_calls(env.log)
    assert [c['args'] for c in calls] == [['restart', 'pianist.service']]
    assert calls[0]['head'] == env.repos.hashes['1.10.0'], 'restart came before the checkout'
    reports = env.servers.report_bodies()
    assert len(reports) == 1
    report = reports[0]
    assert report['result'] == 'updated' and report['device_id'] == 'jetson-0001'
    assert report['from'] == {'version': '1.9.0', 'git_hash': before}
    assert report['to'] == {'version': '1.10.0', 'git_hash': env.repos.hashes['1.10.0']}
    assert report['finished_at'] >= report['started_at'] > 0 and report['id']
    state = StateStore(env.state_dir).load()
    assert (state.phase, state.current_version, state.previous_hash) == (
        Phase.IDLE, '1.10.0', before)
    assert state.last_sequence == 10
    # The same manifest again: nothing happens.
    again = env.manager().check_once()
    assert again.result == 'up_to_date'
    assert len(restart_calls(env.log)) == 1 and len(env.servers.report_bodies()) == 1


def test_same_version_does_nothing(env):
    env.offer('1.9.0', 3)
    manager = env.manager()
    assert manager.check_once().result == 'up_to_date'
    assert restart_calls(env.log) == [] and env.servers.report_bodies() == []
    assert env.servers.main.count('/manifest.json') == 1
    assert manager.status()['current_version'] == '1.9.0'


def test_older_version_is_refused_and_reported_once(env):
    head = env.head()
    env.offer('1.0.0', 3)
    manager = env.manager()
    outcome = manager.check_once()
    assert outcome.result == 'refused_downgrade' and '1.0.0' in outcome.error
    assert env.head() == head and restart_calls(env.log) == []
    assert [r['result'] for r in env.servers.report_bodies()] == ['refused_downgrade']
    manager.check_once()
    assert len(env.servers.report_bodies()) == 1, 'a repeated refusal is reported once'


def _serve_bad(env: Env, case: str) -> None:
    target = env.repos.hashes['1.10.0']
    good = manifest_for(KEY, '1.10.0', target, 10)
    srv = env.servers
    if case == 'unsigned':
        srv.set_manifest({'signed': good['signed']})
    elif case == 'wrong-key':
        srv.set_manifest(manifest_for(OTHER_KEY, '1.10.0', target, 10))
    elif case == 'tampered':
        good['signed']['git_hash'] = env.repos.hashes['1.11.0']
        srv.set_manifest(good)
    elif case == 'expired':
        srv.set_manifest(manifest_for(KEY, '1.10.0', target, 10, expires_in=-1))
    elif case == 'malformed':
        srv.set_manifest(b'{"signed": {"version": "1.10.0",')
    elif case == 'missing-fields':
        srv.set_manifest({'signatures': good['signatures']})
    elif case == 'oversized':
        srv.set_manifest(b' ' * 70000 + json.dumps(good).encode())
    elif case == '404':
        srv.set_manifest(b'gone', status=404)
    elif case == '500':
        srv.set_manifest(b'boom', status=500)
    elif case == 'timeout':
        srv.set_manifest(good, delay=2.5)
    elif case == 'unreachable':
        env.overrides['manifest_url'] = f'http://127.0.0.1:{free_port()}/manifest.json'


@pytest.mark.parametrize('case,result', [
    ('unsigned', 'signature_invalid'), ('wrong-key', 'signature_invalid'),
    ('tampered', 'signature_invalid'), ('expired', 'manifest_expired'),
    ('malformed', 'manifest_invalid'), ('missing-fields', 'manifest_invalid'),
    ('oversized', 'fetch_error'), ('404', 'fetch_error'), ('500', 'fetch_error'),
    ('timeout', 'fetch_error'), ('unreachable', 'fetch_error'),
])
def test_bad_manifests_change_nothing_and_are_reported(env, case, result):
    head = env.head()
    _serve_bad(env, case)
    outcome = env.manager().check_once()
    assert outcome.result == result, outcome
    assert env.head() == head and restart_calls(env.log) == []
    reports = env.servers.report_bodies()
    assert [r['result'] for r in reports] == [result]
    assert reports[0]['error']


def test_replayed_manifest_is_refused(env):
    env.offer('1.10.0', 10)
    assert env.manager().check_once().result == 'updated'
    # An attacker replays an older, validly signed manifest (e.g. captured earlier).
    env.offer('1.11.0', 9)
    outcome = env.manager().check_once()
    assert outcome.result == 'manifest_replayed'
    assert env.head() == env.repos.hashes['1.10.0']
    assert len(restart_calls(env.log)) == 1


def test_dirty_tree_is_refused_and_left_alone(env):
    head = env.head()
    path = os.path.join(env.repos.device, 'VERSION')
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('hand edit\n')
    env.offer('1.10.0', 10)
    outcome = env.manager().check_once()
    assert outcome.result == 'refused_dirty_tree' and 'VERSION' in outcome.error
    assert env.head() == head and restart_calls(env.log) == []
    with open(path, encoding='utf-8') as handle:
        assert handle.read() == 'hand edit\n'
    assert env.servers.report_bodies()[0]['result'] == 'refused_dirty_tree'


def test_unknown_hash_is_refused(env):
    head = env.head()
    env.servers.set_manifest(manifest_for(KEY, '2.0.0', 'c0ffee' * 6 + 'c0ff', 10))
    outcome = env.manager().check_once()
    assert outcome.result == 'refused_unknown_hash'
    assert env.head() == head and restart_calls(env.log) == []


def test_commit_pushed_after_clone_is_fetched(env):
    origin = env.repos.origin
    with open(os.path.join(origin, 'NEW'), 'w', encoding='utf-8') as handle:
        handle.write('x\n')
    git(origin, 'add', 'NEW')
    git(origin, 'rm', '--quiet', 'BROKEN')
    git(origin, 'commit', '--quiet', '-m', 'release 3.0.0')
    new_hash = git(origin, 'rev-parse', 'HEAD')
    env.servers.set_manifest(manifest_for(KEY, '3.0.0', new_hash, 10))
    assert env.manager().check_once().result == 'updated'
    assert env.head() == new_hash


def test_unhealthy_release_is_rolled_back_and_not_retried(env):
    before = env.head()
    env.offer('1.11.0', 10)
    manager = env.manager()
    outcome = manager.check_once()
    assert outcome.result == 'rolled_back', outcome
    # The rollback names the cause /health gave, not only the status code.
    assert ("health check failed: not healthy within 2 s: HTTP 503, status 'error': "
            'detector: no frames for 12 s; camera: FAILED') in outcome.error
    assert env.head() == before
    calls = restart_calls(env.log)
    assert [c['head'] for c in calls] == [env.repos.hashes['1.11.0'], before]
    reports = env.servers.report_bodies()
    assert [r['result'] for r in reports] == ['rolled_back']
    assert 'camera: FAILED' in reports[0]['error']
    assert reports[0]['to']['version'] == '1.11.0' and reports[0]['from']['git_hash'] == before
    # The next poll offers the same bad release: it is skipped, not installed again.
    outcome = manager.check_once()
    assert outcome.result == 'skipped_failed_hash'
    assert len(restart_calls(env.log)) == 2


def test_failing_restart_command_rolls_back(env):
    before = env.head()
    env.offer('1.10.0', 10)
    outcome = env.manager(restart_command=fake_systemctl(env.log, exit_code=5)).check_once()
    assert outcome.result == 'rollback_failed'
    assert 'exited 5' in outcome.error
    assert env.head() == before
    assert len(restart_calls(env.log)) == 2


def test_reports_are_queued_while_the_server_is_down_and_delivered_later(env):
    env.servers.reports.stop()
    env.offer('1.0.0', 5)
    manager = env.manager()
    assert manager.check_once().result == 'refused_downgrade'
    env.offer('1.10.0', 6)
    assert manager.check_once().result == 'updated'
    assert manager.status()['pending_reports'] == 2
    assert manager.status()['report_error']
    # A manager built afresh (as after a restart) sees the same on-disk queue.
    manager = env.manager()
    assert manager.status()['pending_reports'] == 2
    env.servers.reports.start()
    env.servers.report_status = 503
    assert manager.flush_reports() == 0
    env.servers.report_status = 200
    assert manager.flush_reports() == 2
    assert [r['result'] for r in env.servers.report_bodies()] == [
        'refused_downgrade', 'updated']
    assert manager.status()['pending_reports'] == 0


def test_staged_rollout_skips_devices_outside_the_cohort(env):
    env.offer('1.10.0', 10, rollout_percent=0)
    assert env.manager().check_once().result == 'not_in_cohort'
    assert env.head() == env.repos.hashes['1.9.0']
    env.offer('1.10.0', 11, rollout_percent=100)
    assert env.manager().check_once().result == 'updated'


def test_resume_in_health_check_commits_or_rolls_back(env):
    """A state saved just before the restart is finished by the next manager."""
    before = env.head()
    store = StateStore(env.state_dir)
    for version, expected in (('1.10.0', 'updated'), ('1.11.0', 'rolled_back')):
        git(env.repos.device, 'checkout', '--quiet', '--detach', env.repos.hashes[version])
        store.save(OtaState(phase=Phase.HEALTH_CHECK, previous_version='1.9.0',
                            previous_hash=before, target_version=version,
                            target_hash=env.repos.hashes[version], attempts=1,
                            current_version='1.9.0', current_hash=before))
        manager = env.manager()
        assert manager.resume_pending() and manager.startup_delay() == 0.0
        outcome = manager.check_once()
        assert outcome.result == expected
        assert env.head() == (env.repos.hashes[version] if expected == 'updated' else before)
        git(env.repos.device, 'checkout', '--quiet', '--detach', before)
    assert [r['result'] for r in env.servers.report_bodies()] == ['updated', 'rolled_back']


def test_interrupted_health_wait_resumes_later(env):
    env.offer('1.11.0', 10)
    stop = threading.Event()
    stop.set()
    outcome = env.manager().check_once(stop)
    assert outcome.result == 'interrupted'
    assert StateStore(env.state_dir).load().phase == Phase.HEALTH_CHECK
    assert env.manager().check_once().result == 'rolled_back'


def test_state_is_atomic_and_corruption_recovers(tmp_path):
    store = StateStore(str(tmp_path))
    store.save(OtaState(current_version='1.2.3', last_sequence=7))
    assert StateStore(str(tmp_path)).load().last_sequence == 7
    assert [n for n in os.listdir(tmp_path) if n.startswith('.')] == []
    with open(store.path, 'w', encoding='utf-8') as handle:
        handle.write('{"phase": "idle", "last_sequ')
    assert store.load() == OtaState()
    assert os.path.exists(store.path + '.corrupt')


def test_disabled_without_url_or_key(tmp_path):
    manager = OtaManager(make_config({'state_dir': str(tmp_path), 'repo_dir': str(tmp_path)}))
    assert manager.check_once().result == 'disabled'


def test_jitter_stays_within_bounds(env):
    manager = OtaManager(make_config({**env.overrides, 'poll_interval_sec': 300.0,
                                      'poll_jitter_sec': 30.0}), rng=random.Random(1))
    delays = [manager.next_delay() for _ in range(500)]
    assert 270.0 <= min(delays) < 275.0 and 325.0 < max(delays) <= 330.0
    starts = [manager.startup_delay() for _ in range(500)]
    assert 0.0 <= min(starts) and max(starts) <= 300.0 and max(starts) > 250.0


def test_config_refuses_bad_values():
    with pytest.raises(ValueError):
        make_config({'poll_interval_sec': 0.0})
    with pytest.raises(ValueError):
        make_config({'no_such_param': 1})
    assert make_config({'health.timeout_sec': 5}).health_timeout_sec == 5.0


# ---- logging and operator messages ------------------------------------------------------


def _ota_lines(caplog, level=None) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith('pianist_ros.ota') and (level is None or r.levelno == level)]


def test_checks_are_logged_and_failures_throttled(env, caplog):
    import logging
    caplog.set_level(logging.INFO, logger='pianist_ros.ota')
    env.offer('1.9.0', 3)
    manager = env.manager()
    manager.check_once()
    assert 'OTA check: no update (running 1.9.0)' in _ota_lines(caplog, logging.INFO)
    env.offer('1.0.0', 4)
    manager.check_once()
    assert any(line.startswith('OTA check: refused 1.0.0 (refused_downgrade)')
               for line in _ota_lines(caplog, logging.INFO))
    caplog.clear()
    env.servers.reports.stop()
    env.servers.set_manifest(b'{"signed": {"version": "1.10.0",')
    for _ in range(3):
        assert manager.check_once().result == 'manifest_invalid'
    warnings = _ota_lines(caplog, logging.WARNING)
    invalid = [w for w in warnings if w.startswith('OTA check failed: manifest_invalid')]
    undelivered = [w for w in warnings if w.startswith('cannot deliver queued OTA reports')]
    assert len(invalid) == 1 and len(undelivered) == 1, warnings
    assert manager.status()['pending_reports'] == 1
    # The delivery error survives in the state file, for `pianist-ota status`.
    assert StateStore(env.state_dir).load().report_error == manager.status()['report_error']
    assert manager.status()['report_error']


def test_run_logs_that_it_polls(env, caplog):
    import logging
    caplog.set_level(logging.INFO, logger='pianist_ros.ota')
    env.offer('1.9.0', 3)
    manager = env.manager(**{'startup_jitter_sec': 0.0, 'poll_interval_sec': 3600.0})
    stop = threading.Event()
    thread = threading.Thread(target=manager.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30.0
        while manager.status()['checks'] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10.0)
    # Setting stop alone ends the hour-long wait (no wake event was given).
    assert not thread.is_alive(), 'run() ignored stop during its poll wait'
    started = [line for line in _ota_lines(caplog, logging.INFO)
               if line.startswith('OTA checker started')]
    assert started and env.overrides['manifest_url'] in started[0] and '3600 s' in started[0]


def test_missing_key_file_is_named_as_such(tmp_path):
    from pianist_ros.ota.errors import KeyLoadError
    for path in ('/etc/pianist/release.pub', str(tmp_path / 'nope'), './keys/x.pem'):
        with pytest.raises(KeyLoadError, match='does not exist'):
            load_public_key(path)
    with pytest.raises(KeyLoadError, match='neither|invalid'):
        load_public_key('not-a-key')


def test_cli_set_keeps_string_parameters_as_typed(tmp_path):
    config = tmp_path / 'ota.yaml'
    config.write_text('ota_manager:\n  ros__parameters:\n    poll_interval_sec: 60.0\n')
    cfg = load_config(str(config), ['device_id=1234', 'restart_command=true',
                                    'poll_jitter_sec=5'])
    assert cfg.device_id == '1234'  # a numeric serial, not the int 1234
    assert cfg.restart_command == 'true'
    assert cfg.poll_interval_sec == 60.0 and cfg.poll_jitter_sec == 5.0
    with pytest.raises(ValueError, match='unknown'):
        load_config(str(config), ['nonsense=1'])
