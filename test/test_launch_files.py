"""Launch file checks that run without the launch package (not installable here).

Each file compiles; every executable it names is a console script of setup.py; every
config file it names exists; bringup includes files that exist. The parameter side
(every yaml parameter declared, every declared parameter has a default) is in
test_config_schema.py.
"""

import ast
import glob
import os
import re

import pytest

from pianist_ros.bringup import NODES
from support import REPO

LAUNCH_FILES = sorted(glob.glob(os.path.join(REPO, 'launch', '*.launch.py')))


def _console_scripts() -> set[str]:
    with open(os.path.join(REPO, 'setup.py'), encoding='utf-8') as handle:
        text = handle.read()
    return set(re.findall(r"'([\w-]+) = pianist_ros[\w.]*:main'", text))


def _tree(path: str) -> ast.Module:
    with open(path, encoding='utf-8') as handle:
        return ast.parse(handle.read(), filename=path)


def _string_constants(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_launch_files_exist():
    names = {os.path.basename(p) for p in LAUNCH_FILES}
    assert {'bringup.launch.py', 'camera.launch.py', 'node.launch.py'} <= names


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=os.path.basename)
def test_compiles_and_defines_generate_launch_description(path):
    tree = _tree(path)
    compile(tree, path, 'exec')
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=os.path.basename)
def test_executables_are_entry_points(path):
    scripts = _console_scripts()
    tree = _tree(path)
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        for kw in call.keywords:
            if kw.arg == 'executable' and isinstance(kw.value, ast.Constant):
                assert kw.value.value in scripts, f'{kw.value.value} is not a console script'
            if kw.arg == 'package' and isinstance(kw.value, ast.Constant):
                assert kw.value.value == 'pianist_ros'
    # node.launch.py starts its executable from a list of allowed node names.
    for assign in ast.walk(tree):
        if (isinstance(assign, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ('NODES', 'OPTIONAL_NODES')
                for t in assign.targets)):
            for name in _string_constants(assign.value):
                if name in ('true', 'false') or name.startswith('use_'):
                    continue
                assert name in scripts, f'{os.path.basename(path)} names {name}'


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=os.path.basename)
def test_named_files_exist(path):
    for const in _string_constants(_tree(path)):
        if const.endswith(('.yaml', '.rviz', '.xml')):
            assert os.path.exists(os.path.join(REPO, 'config', const)), const
        if const.endswith('.launch.py'):
            assert os.path.exists(os.path.join(REPO, 'launch', const)), const


def test_bringup_starts_every_node_and_declares_switches():
    tree = _tree(os.path.join(REPO, 'launch', 'bringup.launch.py'))
    consts = _string_constants(tree)
    for node in NODES:
        if node != 'camera':
            assert node in consts, f'bringup.launch.py does not start {node}'
    for arg in ('namespace', 'params_file', 'source', 'use_respawn', 'log_level',
                'use_detector', 'use_telemetry', 'use_recorder', 'use_ota'):
        assert arg in consts, f'launch argument {arg} missing'


def test_launch_without_detector_relaxes_health_like_bringup():
    """use_detector:=false reaches node.launch.py, which asks the same function as bringup."""
    bringup = _tree(os.path.join(REPO, 'launch', 'bringup.launch.py'))
    passed = [kw for call in ast.walk(bringup) if isinstance(call, ast.Dict)
              for kw, value in zip(call.keys, call.values)
              if isinstance(kw, ast.Constant) and kw.value == 'with_detector'
              and isinstance(value, ast.Call) and value.args
              and isinstance(value.args[0], ast.Constant)
              and value.args[0].value == 'use_detector']
    assert passed, 'bringup.launch.py does not pass use_detector on as with_detector'
    node = _tree(os.path.join(REPO, 'launch', 'node.launch.py'))
    imported = {(n.module, a.name) for n in ast.walk(node) if isinstance(n, ast.ImportFrom)
                for a in n.names}
    assert ('pianist_ros.bringup', 'stack_overrides') in imported
    assert 'with_detector' in _string_constants(node)


def test_camera_is_a_lifecycle_node_driven_to_active():
    tree = _tree(os.path.join(REPO, 'launch', 'camera.launch.py'))
    calls = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {'LifecycleNode', 'ChangeState', 'OnProcessStart', 'OnStateTransition'} <= calls
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert {'TRANSITION_CONFIGURE', 'TRANSITION_ACTIVATE'} <= attrs


def test_data_files_install_launch_and_config():
    with open(os.path.join(REPO, 'setup.py'), encoding='utf-8') as handle:
        text = handle.read()
    assert "glob('launch/*.launch.py')" in text
    assert "glob('config/*.yaml')" in text and "glob('config/*.rviz')" in text
    assert os.path.isfile(os.path.join(REPO, 'resource', 'pianist_ros'))
