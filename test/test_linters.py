"""The ament linters' checks, run as tests (ament_flake8, ament_pep257, ament_xmllint).

The ament_lint packages are not on PyPI, so the same tools run directly with the
same settings: flake8 with .flake8 (ament_flake8.ini), pydocstyle with ament_pep257's
ignore list, and an XML check of package.xml.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from support import REPO

PY_DIRS = ['pianist_ros', 'test', 'bench', 'launch', 'scripts', 'setup.py']
PEP257_IGNORE = 'D100,D101,D102,D103,D104,D105,D106,D107,D203,D212,D404'


@pytest.mark.linter
def test_flake8():
    result = subprocess.run([sys.executable, '-m', 'flake8', *PY_DIRS], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f'flake8 found problems:\n{result.stdout}{result.stderr}'


@pytest.mark.linter
def test_pep257():
    result = subprocess.run(
        [sys.executable, '-m', 'pydocstyle', '--convention=pep257',
         f'--add-ignore={PEP257_IGNORE}', 'pianist_ros', 'launch', 'bench'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f'pydocstyle found problems:\n{result.stdout}{result.stderr}'


@pytest.mark.linter
def test_package_xml():
    tree = ElementTree.parse(os.path.join(REPO, 'package.xml'))
    root = tree.getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'pianist_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    # Every ROS / system module the package imports at run time is declared.
    for dep in ('rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'diagnostic_msgs',
                'lifecycle_msgs', 'visualization_msgs', 'cv_bridge', 'diagnostic_updater',
                'launch_ros', 'python3-opencv', 'python3-numpy'):
        assert dep in exec_deps, f'{dep} missing from package.xml exec_depend'
    import pianist_ros
    assert root.findtext('version') == pianist_ros.__version__


def _imported_top_modules() -> set[str]:
    import ast
    names = set()
    for base, _dirs, files in os.walk(os.path.join(REPO, 'pianist_ros')):
        for name in files:
            if not name.endswith('.py'):
                continue
            with open(os.path.join(base, name), encoding='utf-8') as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(a.name.split('.')[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split('.')[0])
    return names


#: import name -> package.xml key (rosdep) for everything that is not stdlib.
ROSDEP_KEYS = {
    'rclpy': 'rclpy', 'sensor_msgs': 'sensor_msgs', 'std_msgs': 'std_msgs',
    'std_srvs': 'std_srvs', 'diagnostic_msgs': 'diagnostic_msgs',
    'diagnostic_updater': 'diagnostic_updater', 'lifecycle_msgs': 'lifecycle_msgs',
    'visualization_msgs': 'visualization_msgs', 'geometry_msgs': 'geometry_msgs',
    'builtin_interfaces': 'builtin_interfaces', 'rcl_interfaces': 'rcl_interfaces',
    'cv_bridge': 'cv_bridge', 'cv2': 'python3-opencv', 'numpy': 'python3-numpy',
    'yaml': 'python3-yaml', 'packaging': 'python3-packaging',
    'cryptography': 'python3-cryptography', 'prometheus_client': 'python3-prometheus-client',
    'gi': 'python3-gi', 'ament_index_python': 'ament_index_python',
    'mediapipe': 'python3-mediapipe-pip', 'simplejpeg': 'python3-simplejpeg-pip',
}


@pytest.mark.linter
def test_every_third_party_import_is_declared():
    root = ElementTree.parse(os.path.join(REPO, 'package.xml')).getroot()
    exec_deps = {e.text for e in root.findall('exec_depend')}
    stdlib = set(sys.stdlib_module_names) | {'pianist_ros'}
    for module in sorted(_imported_top_modules() - stdlib):
        assert module in ROSDEP_KEYS, f'unknown third-party import {module}: map it here'
        assert ROSDEP_KEYS[module] in exec_deps, (
            f'{module} is imported but {ROSDEP_KEYS[module]} is not an exec_depend')
