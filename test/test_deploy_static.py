"""Deployment artefacts checked with the real tools: hadolint, shellcheck, systemd-analyze.

No Docker engine runs here, so the image is validated statically: the linter, the
files it copies, the pinned list it installs, and its scripts run outside a container.
"""

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

from support import REPO
from support import VENV_BIN

DOCKERFILE = os.path.join(REPO, 'docker', 'Dockerfile')
UNITS = ('pianist.service', 'pianist-venv.service')
#: Installed paths in the units -> files that exist here, for the verify copy.
VERIFY_PATHS = {
    '/usr/local/lib/pianist/sd-notify-relay': os.path.join(REPO, 'docker', 'sd_notify_relay.py'),
    '/opt/pianist/venv/bin/pianist-bringup': os.path.join(VENV_BIN, 'pianist-bringup'),
}
SKIP_DIRS = {'.git', '.venv', 'venv', 'build', 'install', 'log', '__pycache__',
             '.pytest_cache', 'node_modules'}


def _read(path: str) -> str:
    with open(path, encoding='utf-8') as handle:
        return handle.read()


def _tool(name: str) -> str:
    path = os.path.join(VENV_BIN, name)
    if os.path.exists(path):
        return path
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f'{name} is not installed (requirements/test.txt pins it)')


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) with continuation lines joined."""
    out, buf = [], ''
    for line in _read(DOCKERFILE).splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith('#')):
            continue
        if line.lstrip().startswith('#'):
            continue
        buf += line.rstrip('\\').rstrip() + ' ' if line.endswith('\\') else line
        if not line.endswith('\\'):
            word, _sep, rest = buf.strip().partition(' ')
            out.append((word.upper(), rest.strip()))
            buf = ''
    return out


# ---- Dockerfile -------------------------------------------------------------------

@pytest.mark.linter
def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run([_tool('hadolint'), DOCKERFILE], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_every_ignored_hadolint_rule_has_a_written_reason():
    lines = _read(DOCKERFILE).splitlines()
    ignores = [(i, line) for i, line in enumerate(lines) if 'hadolint ignore=' in line]
    assert ignores, 'expected the documented DL3008 ignores'
    for i, line in ignores:
        rules = re.search(r'ignore=([\w,]+)', line).group(1).split(',')
        above = []
        j = i - 1
        while j >= 0 and lines[j].startswith('#') and 'hadolint ignore' not in lines[j]:
            above.append(lines[j])
            j -= 1
        reason = ' '.join(above)
        for rule in rules:
            assert rule in reason and len(reason) > 40, (
                f'line {i + 1}: {rule} is ignored without a reason right above it')


def test_dockerfile_has_two_stages_from_one_base_argument():
    instructions = _dockerfile_instructions()
    froms = [args for word, args in instructions if word == 'FROM']
    assert froms == ['${BASE_IMAGE} AS build', '${BASE_IMAGE} AS runtime']
    first = instructions[0]
    assert first == ('ARG', 'BASE_IMAGE=ros:jazzy-ros-base')
    text = _read(DOCKERFILE)
    assert 'dustynv/ros:humble-ros-base-l4t-r36.2.0' in text  # documented Jetson base
    words = [w for w, _a in instructions]
    assert 'HEALTHCHECK' in words and 'ENTRYPOINT' in words
    user = [a for w, a in instructions if w == 'USER']
    assert user and user[-1] not in ('root', '0', '0:0')
    health = [a for w, a in instructions if w == 'HEALTHCHECK'][0]
    assert 'healthcheck.py' in health
    assert 'colcon build' in text


def test_dockerfile_installs_python_deps_from_the_venvs_pinned_list():
    """The image and the dev venv install the very same requirements/base.txt."""
    instructions = _dockerfile_instructions()
    # 1. requirements/ is copied to a directory ...
    copies = [a.split() for w, a in instructions if w == 'COPY']
    req_dest = [c[-1].rstrip('/') for c in copies if c[0] == 'requirements/']
    assert len(req_dest) == 1, copies
    # 2. ... that install-python-deps.sh gets as its REQUIREMENTS_DIR argument ...
    runs = [a for w, a in instructions if w == 'RUN' and 'install-python-deps.sh' in a]
    assert len(runs) == 1
    argv = runs[0].split()
    assert argv[argv.index('install-python-deps.sh') + 2] == req_dest[0]
    # 3. ... which installs exactly base.txt from it, and nothing else is pip-installed.
    script = _read(os.path.join(REPO, 'docker', 'install-python-deps.sh'))
    assert 'req_dir=$2' in script
    assert re.search(r'pip install [^\n]*-r "\$req_dir/base\.txt"', script)
    pip_lines = [line for line in script.splitlines()
                 if 'pip install' in line and not line.lstrip().startswith('#')]
    assert len(pip_lines) == 2 and '"$pin"' in pip_lines[1]  # the cv_bridge fallback pin
    assert 'pip install' not in ' '.join(a for w, a in instructions if w == 'RUN')
    # The dev venv: Makefile -> requirements/test.txt -> ros-pypi.txt -> base.txt.
    assert '-r requirements/test.txt' in _read(os.path.join(REPO, 'Makefile'))
    chain, name = [], 'test.txt'
    while True:
        chain.append(name)
        refs = [line.split()[1] for line in
                _read(os.path.join(REPO, 'requirements', name)).splitlines()
                if line.startswith('-r ')]
        if not refs:
            break
        name = refs[0]
    assert chain[-1] == 'base.txt', chain
    # Every runtime line is an exact pin, so image and venv resolve the same versions.
    for line in _read(os.path.join(REPO, 'requirements', 'base.txt')).splitlines():
        if line.strip() and not line.startswith('#'):
            assert re.fullmatch(r'[A-Za-z0-9_.\-\[\]]+==[\w.]+', line.strip()), line
    assert re.search(r'^cv-bridge==', _read(os.path.join(REPO, 'requirements', 'ros-pypi.txt')),
                     re.M)


def _dockerignore_patterns() -> list[str]:
    return [line.strip() for line in _read(os.path.join(REPO, '.dockerignore')).splitlines()
            if line.strip() and not line.startswith('#')]


def test_dockerignore_keeps_what_the_image_copies_and_drops_local_state():
    patterns = _dockerignore_patterns()
    for must in ('.git', '.venv', 'build', 'install', 'log'):
        assert must in patterns
    top_ignored = {p.rstrip('/') for p in patterns if '*' not in p}
    for word, args in _dockerfile_instructions():
        if word != 'COPY' or args.startswith('--from'):
            continue
        for src in args.split()[:-1]:
            assert os.path.exists(os.path.join(REPO, src)), f'COPY source {src} missing'
            assert src.split('/')[0] not in top_ignored, f'{src} is excluded by .dockerignore'


@pytest.mark.parametrize('args', [[], ['/tmp/v'], ['/tmp/v', 'req', 'conda']])
def test_install_python_deps_refuses_bad_arguments(args):
    result = subprocess.run(['bash', os.path.join(REPO, 'docker', 'install-python-deps.sh'),
                             *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert 'usage' in result.stderr or 'OPENCV' in result.stderr


# ---- shell scripts ----------------------------------------------------------------

def _shell_scripts() -> list[str]:
    found = []
    for base, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = os.path.join(base, name)
            if name.endswith('.sh'):
                found.append(path)
                continue
            try:
                with open(path, 'rb') as handle:
                    head = handle.readline(100)
            except OSError:
                continue
            if re.match(rb'#!\s*/(usr/)?bin/(env\s+)?(ba|da)?sh\b', head):
                found.append(path)
    return sorted(found)


@pytest.mark.linter
def test_shellcheck_passes_on_every_shell_script():
    scripts = _shell_scripts()
    rel = {os.path.relpath(p, REPO) for p in scripts}
    assert {'.ci/run', 'scripts/install-service.sh', 'docker/entrypoint.sh',
            'docker/install-python-deps.sh'} <= rel
    result = subprocess.run([_tool('shellcheck'), '--external-sources', *scripts], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- systemd units ----------------------------------------------------------------

def _verify_copy(tmp_path) -> str:
    """Copy the units (and the Jetson drop-in) with installed paths mapped to real files.

    systemd-analyze verify checks that every ExecStart binary exists and is executable;
    on this machine the device paths do not, so they point at the same programs in the
    checkout / venv. docker.service is a stub: verify needs Requires= targets to load.
    """
    out = tmp_path / 'units'
    shutil.copytree(os.path.join(REPO, 'docker', 'pianist.service.d'),
                    out / 'pianist.service.d')
    docker = shutil.which('docker') or '/bin/true'
    for unit in UNITS:
        text = _read(os.path.join(REPO, 'docker', unit))
        for installed, here in VERIFY_PATHS.items():
            text = text.replace(installed, here)
        text = text.replace('/usr/bin/docker', docker)
        (out / unit).write_text(text)
    (out / 'docker.service').write_text('[Unit]\nDescription=stub\n[Service]\n'
                                        'ExecStart=/bin/true\n')
    return str(out)


@pytest.mark.linter
def test_systemd_analyze_verify_passes_on_the_units(tmp_path):
    tool = shutil.which('systemd-analyze')
    if tool is None:
        pytest.skip('systemd-analyze is not installed')
    units = _verify_copy(tmp_path)
    for path in VERIFY_PATHS.values():
        assert os.access(path, os.X_OK), f'{path} must be executable for verify'
    result = subprocess.run([tool, 'verify', *[os.path.join(units, u) for u in UNITS]],
                            capture_output=True, text=True, timeout=120)
    # verify exits 0 on unknown keys and bad values, printing them: both must be clean.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr)


def test_verify_would_catch_a_broken_unit(tmp_path):
    """Guard the guard: a typo in a unit produces output the test above fails on."""
    tool = shutil.which('systemd-analyze')
    if tool is None:
        pytest.skip('systemd-analyze is not installed')
    units = _verify_copy(tmp_path)
    path = os.path.join(units, 'pianist-venv.service')
    with open(path, 'a', encoding='utf-8') as handle:
        handle.write('Restrt=always\n')
    result = subprocess.run([tool, 'verify', path], capture_output=True, text=True, timeout=60)
    assert 'Restrt' in result.stdout + result.stderr


def _unit_settings(unit: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    text = _read(os.path.join(REPO, 'docker', unit)).replace('\\\n', ' ')
    for line in text.splitlines():
        if '=' in line and not line.startswith(('#', '[')):
            key, _sep, value = line.partition('=')
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.mark.parametrize('unit', UNITS)
def test_units_restart_forever_log_to_journald_and_use_the_watchdog(unit):
    s = _unit_settings(unit)
    assert s['Restart'] == ['always'] and float(s['RestartSec'][0]) > 0
    assert s['StartLimitIntervalSec'] == ['0']
    assert s['SyslogIdentifier'] == ['pianist']
    assert s['Type'] == ['notify'] and s['NotifyAccess'] == ['main']
    assert float(s['WatchdogSec'][0]) >= 10
    assert float(s['TimeoutStopSec'][0]) > 0
    env = ' '.join(s['Environment'])
    assert 'PYTHONUNBUFFERED=1' in env and 'RCUTILS_COLORIZED_OUTPUT=0' in env
    assert 'RCUTILS_CONSOLE_OUTPUT_FORMAT=[{severity}] [{name}]: {message}' in env
    assert 'network-online.target' in s['After'][0] and s['WantedBy'] == ['multi-user.target']


def test_docker_unit_runs_the_container_with_camera_host_network_and_volumes():
    s = _unit_settings('pianist.service')
    assert 'docker.service' in s['After'][0] and s['Requires'] == ['docker.service']
    start = s['ExecStart'][0]
    for flag in ('--network host', '--device ${PIANIST_CAMERA_DEVICE}', '--init',
                 '/var/lib/pianist/recordings:', '/var/lib/pianist/ota:',
                 '--env NOTIFY_SOCKET', '--env WATCHDOG_USEC', '$PIANIST_DOCKER_ARGS'):
        assert flag in start, flag
    # docker stop's grace period fits inside systemd's, or systemd SIGKILLs mid-stop.
    grace = int(re.search(r'--time (\d+)', s['ExecStop'][0]).group(1))
    assert grace < float(s['TimeoutStopSec'][0])
    jetson = _read(os.path.join(REPO, 'docker', 'pianist.service.d', 'jetson.conf'))
    assert '--runtime nvidia' in jetson


# ---- install-service.sh -----------------------------------------------------------

def _install(root, *args) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', os.path.join(REPO, 'scripts', 'install-service.sh'),
                           '--root', str(root), *args],
                          capture_output=True, text=True, timeout=60)


def _snapshot(root) -> dict[str, tuple]:
    state = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            target = os.readlink(path) if os.path.islink(path) else None
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_mtime_ns,
                                                  target)
    return state


@pytest.mark.skipif(shutil.which('systemctl') is None, reason='systemctl is not installed')
def test_install_service_into_a_root_twice_is_idempotent(tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    first = _install(root, '--jetson')
    assert first.returncode == 0, first.stdout + first.stderr
    unit = root / 'etc/systemd/system/pianist.service'
    assert unit.read_text() == _read(os.path.join(REPO, 'docker', 'pianist.service'))
    assert (root / 'etc/systemd/system/pianist.service.d/jetson.conf').is_file()
    relay = root / 'usr/local/lib/pianist/sd-notify-relay'
    assert os.access(relay, os.X_OK)
    wants = root / 'etc/systemd/system/multi-user.target.wants/pianist.service'
    assert os.readlink(wants) == '/etc/systemd/system/pianist.service'
    for sub in ('recordings', 'ota'):
        assert (root / 'var/lib/pianist' / sub).stat().st_uid == 10001
    env_file = root / 'etc/pianist/pianist.env'
    env_file.write_text('SOURCE=/dev/video2\n')  # the site edits its settings

    before = _snapshot(root)
    second = _install(root, '--jetson')
    assert second.returncode == 0, second.stdout + second.stderr
    assert 'nothing to do' in second.stdout and 'installed' not in second.stdout
    assert _snapshot(root) == before
    assert env_file.read_text() == 'SOURCE=/dev/video2\n'

    # Switching to the venv unit disables the Docker one (never two stacks at once).
    third = _install(root, '--venv')
    assert third.returncode == 0, third.stdout + third.stderr
    assert not os.path.lexists(wants)
    assert os.path.lexists(root / 'etc/systemd/system/multi-user.target.wants/'
                                  'pianist-venv.service')


def test_install_service_dry_run_and_no_enable_change_nothing_they_should_not(tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    dry = _install(root, '--dry-run')
    assert dry.returncode == 0, dry.stderr
    assert 'would install /etc/systemd/system/pianist.service' in dry.stdout
    assert os.listdir(root) == []
    plain = _install(root, '--no-enable')
    assert plain.returncode == 0, plain.stderr
    assert (root / 'etc/systemd/system/pianist.service').is_file()
    assert not (root / 'etc/systemd/system/multi-user.target.wants').exists()


@pytest.mark.parametrize('args, message', [
    (['--bogus'], 'unknown option'),
    (['--venv', '--jetson'], 'Docker unit only'),
    (['--now'], 'cannot start'),
])
def test_install_service_refuses_bad_options(tmp_path, args, message):
    result = _install(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr


def test_make_install_service_target_runs_the_script(tmp_path):
    make = shutil.which('make')
    if make is None:
        pytest.skip('make is not installed')
    result = subprocess.run([make, '-n', 'install-service',
                             f'INSTALL_SERVICE_ARGS=--root {tmp_path} --dry-run'],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f'bash scripts/install-service.sh --root {tmp_path} --dry-run' in result.stdout


# ---- entrypoint and health check -------------------------------------------------

def _entrypoint(tmp_path, env: dict, *args) -> subprocess.CompletedProcess:
    ros = tmp_path / 'ros_setup.bash'
    ros.write_text('export ROS_MARKER=ros\n')
    pianist = tmp_path / 'pianist_setup.bash'
    pianist.write_text('export PIANIST_MARKER="$ROS_MARKER+pianist"\n')
    full = {'PATH': os.environ['PATH'], 'ROS_SETUP': str(ros), 'PIANIST_SETUP': str(pianist),
            'PIANIST_DRY_RUN': '1', **env}
    return subprocess.run(['bash', os.path.join(REPO, 'docker', 'entrypoint.sh'), *args],
                          env=full, capture_output=True, text=True, timeout=30)


def test_entrypoint_maps_environment_to_launch_arguments(tmp_path):
    params = tmp_path / 'site.yaml'
    params.write_text('camera: {}\n')
    result = _entrypoint(tmp_path, {
        'SOURCE': 'nvarguscamerasrc ! video/x-raw(memory:NVMM) ! appsink',
        'NAMESPACE': 'piano3', 'PARAMS_FILE': str(params), 'USE_RECORDER': 'yes',
        'USE_OTA': 'false', 'LOG_LEVEL': 'warn'})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        'ros2', 'launch', 'pianist_ros', 'bringup.launch.py',
        'source:=nvarguscamerasrc ! video/x-raw(memory:NVMM) ! appsink',
        'namespace:=piano3', f'params_file:={params}', 'use_recorder:=true',
        'use_ota:=false', 'log_level:=warn']


def test_entrypoint_defaults_to_the_launch_files_defaults(tmp_path):
    result = _entrypoint(tmp_path, {})
    assert result.stdout.split() == ['ros2', 'launch', 'pianist_ros', 'bringup.launch.py']


@pytest.mark.parametrize('env, message', [
    ({'USE_OTA': 'maybe'}, 'USE_OTA must be true or false'),
    ({'LOG_LEVEL': 'verbose'}, 'LOG_LEVEL must be'),
    ({'PARAMS_FILE': '/nonexistent.yaml'}, 'PARAMS_FILE not found'),
    ({'PIANIST_SETUP': '/nonexistent/setup.bash'}, 'pianist install not found'),
])
def test_entrypoint_fails_fast_on_bad_settings(tmp_path, env, message):
    result = _entrypoint(tmp_path, env)
    assert result.returncode == 2 and message in result.stderr
    assert 'ros2' not in result.stdout


def test_entrypoint_sources_ros_and_sets_journald_logging_for_commands(tmp_path):
    result = _entrypoint(tmp_path, {}, 'bash', '-c',
                         'echo "$PIANIST_MARKER|$RCUTILS_COLORIZED_OUTPUT|'
                         '$RCUTILS_CONSOLE_OUTPUT_FORMAT|$PYTHONUNBUFFERED"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ros+pianist|0|[{severity}] [{name}]: {message}|1'


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = b'{"status": "ok"}'
        self.send_response(self.status)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize('status, code', [(200, 0), (503, 1)])
def test_healthcheck_follows_the_health_status(status, code):
    handler = type('Handler', (_Health,), {'status': status})
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}/health'
        result = subprocess.run([sys.executable, os.path.join(REPO, 'docker', 'healthcheck.py')],
                                env={**os.environ, 'PIANIST_HEALTH_URL': url},
                                capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.returncode == code, result.stdout + result.stderr


def test_healthcheck_fails_when_nothing_listens():
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    result = subprocess.run([sys.executable, os.path.join(REPO, 'docker', 'healthcheck.py')],
                            env={**os.environ,
                                 'PIANIST_HEALTH_URL': f'http://127.0.0.1:{port}/health'},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and 'unhealthy' in result.stderr
