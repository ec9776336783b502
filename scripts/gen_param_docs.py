"""Write docs/parameters.md from every node's parameter schema.

Usage: ``.venv/bin/python scripts/gen_param_docs.py`` (``--check`` exits 1 when the
file is out of date; test_config_schema.py runs that check).
"""

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'docs', 'parameters.md')


def render() -> str:
    """Return the Markdown text for every node's parameters."""
    from pianist_ros.bringup import NODES
    from pianist_ros.common.params import markdown_table

    parts = ['# Parameters', '',
             "Generated from each node's schema (`pianist_ros/<area>/config.py`) by",
             '`scripts/gen_param_docs.py`; defaults are those of `config/pianist.yaml`.',
             'Every node also has `diagnostic_updater.period` and `diagnostic_updater.use_fqn`.',
             '']
    for name, spec in NODES.items():
        module = importlib.import_module(spec.module.rsplit('.', 1)[0] + '.config')
        parts += [f'## {name}', '', markdown_table(module.SCHEMA), '']
    return '\n'.join(parts)


def main() -> int:
    """Write or check docs/parameters.md."""
    text = render()
    if '--check' in sys.argv:
        with open(OUT, encoding='utf-8') as handle:
            current = handle.read()
        if current != text:
            print('docs/parameters.md is out of date: run scripts/gen_param_docs.py')
            return 1
        return 0
    tmp = OUT + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.replace(tmp, OUT)
    return 0


if __name__ == '__main__':
    sys.exit(main())
