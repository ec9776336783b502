"""A real, non-editable pip install of the package into a scratch prefix.

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
    prefix = tmp_path / 'prefix'
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--prefix',
         str(prefix), REPO], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    share = prefix / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'pianist_ros').is_file()
    assert (share / 'pianist_ros' / 'package.xml').is_file()
    for name in ('bringup.launch.py', 'camera.launch.py', 'node.launch.py'):
        assert (share / 'pianist_ros' / 'launch' / name).is_file(), name
    assert (share / 'pianist_ros' / 'config' / 'pianist.yaml').is_file()
    assert (share / 'pianist_ros' / 'config' / 'pianist.rviz').is_file()
    scripts = set(os.listdir(prefix / 'bin'))
    for name in [*NODES, 'stack_monitor', 'pianist-bringup', 'pianist-detect', 'pianist-ota']:
        assert name in scripts, f'console script {name} not installed'
