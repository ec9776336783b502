"""A real, non-editable pip install of the package into a scratch venv.

Checks what ``ros2 launch`` / ``ros2 run`` and pianist-bringup rely on: the ament
resource marker, package.xml, launch and config files under share/, and one console
script per node.
"""

import os
import subprocess
import sys

import pytest

from pianist_ros.bringup import NODES
from support import REPO


@pytest.mark.slow
def test_pip_install_layout(tmp_path):
    # A scratch venv, never this one: pip --prefix would first uninstall the
    # editable install the rest of the suite runs from.
    prefix = tmp_path / 'venv'
    subprocess.run([getattr(sys, '_base_executable', sys.executable), '-m', 'venv',
                    str(prefix)], check=True, timeout=120)
    result = subprocess.run(
        [str(prefix / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet', '--no-deps',
         REPO], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    share = prefix / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'pianist_ros').is_file()
    assert (share / 'pianist_ros' / 'package.xml').is_file()
    for name in ('bringup.launch.py', 'camera.launch.py', 'node.launch.py'):
        assert (share / 'pianist_ros' / 'launch' / name).is_file(), name
    assert (share / 'pianist_ros' / 'config' / 'pianist.yaml').is_file()
    assert (share / 'pianist_ros' / 'config' / 'pianist.rviz').is_file()
    assert (share / 'pianist_ros' / 'config' / 'fastdds.xml').is_file()
    scripts = set(os.listdir(prefix / 'bin'))
    for name in [*NODES, 'stack_monitor', 'pianist-bringup', 'pianist-detect', 'pianist-ota']:
        assert name in scripts, f'console script {name} not installed'
