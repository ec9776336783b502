"""config/pianist.yaml against every node's parameter schema, in both directions."""

import importlib
import os

import pytest
import yaml

from pianist_ros.bringup import NODES
from pianist_ros.common.params import check_value
from support import REPO

CONFIG = os.path.join(REPO, 'config', 'pianist.yaml')


def _config() -> dict:
    with open(CONFIG, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def _schema(node_name: str):
    module = importlib.import_module(NODES[node_name].module.rsplit('.', 1)[0] + '.config')
    assert module.NODE_NAME == node_name
    return module.SCHEMA


def test_config_has_one_section_per_node():
    assert set(_config()) == set(NODES) - {'stack_monitor'}


@pytest.mark.parametrize('node_name', sorted(NODES))
def test_yaml_matches_schema_both_ways(node_name):
    schema = {p.name: p for p in _schema(node_name)}
    section = _config()[node_name]['ros__parameters']
    flat = {}

    def flatten(prefix, value):
        if isinstance(value, dict):
            for key, sub in value.items():
                flatten(f'{prefix}{key}.', sub)
        else:
            flat[prefix[:-1]] = value

    flatten('', section)
    undeclared = sorted(set(flat) - set(schema))
    assert not undeclared, f'{node_name}: in yaml but not declared: {undeclared}'
    missing = sorted(set(schema) - set(flat))
    assert not missing, f'{node_name}: declared but not in yaml: {missing}'
    for name, value in flat.items():
        param = schema[name]
        # ROS parameters are strictly typed: 30 in YAML is an integer, not a double.
        assert type(value) is type(param.default) or (
            isinstance(param.default, list) and isinstance(value, list)), (
            f'{node_name}.{name}: yaml type {type(value).__name__} '
            f'!= declared {param.type_name}')
        assert check_value(param, value) is None, check_value(param, value)


@pytest.mark.parametrize('node_name', sorted(NODES))
def test_every_parameter_is_documented(node_name):
    for param in _schema(node_name):
        assert param.description.strip(), param.name
        assert param.default is not None, param.name


def test_parameter_docs_are_current():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'gen_param_docs.py'),
                             '--check'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
