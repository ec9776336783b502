r"""``pianist-ota``: the OTA manager outside ROS, plus release tools (keygen, sign, verify).

Device side::

    pianist-ota check  [--config pianist.yaml] [--set name=value ...]   # one check
    pianist-ota run    [--config pianist.yaml] [--set name=value ...]   # poll forever
    pianist-ota status [--config pianist.yaml]

Release side::

    pianist-ota keygen --out release-key.pem
    pianist-ota sign --key release-key.pem --version 1.0.1 --git-hash <40 hex> \
        [--sequence N] [--expires-days 14] [--rollout-percent 10] --out manifest.json
    pianist-ota verify --public-key <hex|file> manifest.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import yaml

from pianist_ros.ota.config import make_config
from pianist_ros.ota.config import NODE_NAME
from pianist_ros.ota.config import OtaConfig
from pianist_ros.ota.config import SCHEMA
from pianist_ros.ota.errors import OtaError
from pianist_ros.ota.manager import OtaManager
from pianist_ros.ota.manifest import build_signed
from pianist_ros.ota.manifest import generate_private_key
from pianist_ros.ota.manifest import load_private_key
from pianist_ros.ota.manifest import load_public_key
from pianist_ros.ota.manifest import private_key_pem
from pianist_ros.ota.manifest import public_key_text
from pianist_ros.ota.manifest import sign
from pianist_ros.ota.manifest import verify
from pianist_ros.ota.state import atomic_write
from pianist_ros.ota.state import StateStore

#: Results after which ``check`` exits 0; anything else exits 1.
_FINE = frozenset({'updated', 'up_to_date', 'not_in_cohort', 'disabled',
                   'prerelease_skipped'})
_MAX_CONFIG_BYTES = 1 << 20


#: Parameter name -> default, to know which ``--set`` values are plain strings.
_DEFAULTS = {param.name: param.default for param in SCHEMA}


def load_config(path: str | None, overrides: list[str]) -> OtaConfig:
    """Read the ``ota_manager`` section of a parameter file, then apply ``name=value``.

    :raises ValueError: unreadable file, unknown parameter or invalid value.
    """
    values: dict[str, Any] = {}
    if path is None:
        from pianist_ros.common.paths import default_config
        path = default_config()
    try:
        with open(path, encoding='utf-8') as handle:
            document = yaml.safe_load(handle.read(_MAX_CONFIG_BYTES)) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f'cannot read {path}: {exc}') from exc
    section = (document.get(NODE_NAME) or {}).get('ros__parameters') or {}

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                flatten(f'{prefix}{key}.', sub)
        else:
            values[prefix[:-1]] = value

    flatten('', section)
    for item in overrides:
        name, sep, text = item.partition('=')
        if not sep:
            raise ValueError(f'--set expects name=value, got {item!r}')
        name = name.strip()
        if isinstance(_DEFAULTS.get(name), str):
            values[name] = text  # a string parameter takes the text as it is ('1234', 'yes')
        else:
            values[name] = yaml.safe_load(text) if text.strip() else ''
    return make_config(values)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='pianist-ota', description=__doc__.split('\n')[0])
    parser.add_argument('--log-level', default='info',
                        choices=['debug', 'info', 'warning', 'error'])
    sub = parser.add_subparsers(dest='command', required=True)
    for name, text in (('check', 'finish an interrupted update, else check once'),
                       ('run', 'check every poll_interval_sec until SIGTERM / Ctrl-C'),
                       ('status', 'print the persisted state and pending reports')):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument('--config', default=None,
                         help='parameter file with an ota_manager section '
                              '(default: the installed config/pianist.yaml)')
        cmd.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                         help='override one parameter, e.g. --set poll_interval_sec=60.0')
    keygen = sub.add_parser('keygen', help='create an ed25519 release signing key')
    keygen.add_argument('--out', required=True, help='private key PEM file (created 0600)')
    signer = sub.add_parser('sign', help='write a signed manifest')
    signer.add_argument('--key', required=True, help='private key PEM file')
    signer.add_argument('--version', required=True, help='release version, e.g. 1.0.1')
    signer.add_argument('--git-hash', required=True, help='full commit id of the release')
    signer.add_argument('--sequence', type=int, default=None,
                        help='strictly increasing counter (default: the current Unix time)')
    signer.add_argument('--expires-days', type=float, default=14.0,
                        help='validity in days; re-sign before it ends (default 14)')
    signer.add_argument('--rollout-percent', type=int, default=100,
                        help='share of the fleet (by device-id hash) that installs it')
    signer.add_argument('--out', default='-', help='output file (default: stdout)')
    verifier = sub.add_parser('verify', help='check a manifest signature and expiry')
    verifier.add_argument('--public-key', required=True, help='hex, base64 or file')
    verifier.add_argument('manifest', help='manifest file')
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pianist-ota``; return the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        return _COMMANDS[args.command](args)
    except (OtaError, OSError, ValueError) as exc:
        print(f'pianist-ota {args.command}: {exc}', file=sys.stderr)
        return 2


def _cmd_check(args: argparse.Namespace) -> int:
    manager = OtaManager(load_config(args.config, args.set))
    outcome = manager.check_once()
    print(json.dumps({'result': outcome.result, 'error': outcome.error,
                      'from': outcome.from_version, 'to': outcome.to_version,
                      'pending_reports': manager.status()['pending_reports']}))
    return 0 if outcome.result in _FINE else 1


def _cmd_run(args: argparse.Namespace) -> int:
    manager = OtaManager(load_config(args.config, args.set))
    stop = threading.Event()
    wake = threading.Event()

    def _on_signal(_signum, _frame) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    worker = threading.Thread(target=manager.run, args=(stop, wake), name='ota-checker',
                              daemon=True)
    worker.start()
    # The main thread only waits, so signals are handled promptly.
    while worker.is_alive():
        worker.join(0.5)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    state = StateStore(config.resolved_state_dir()).load()
    reports = os.path.join(config.resolved_state_dir(), 'reports')
    pending = len([n for n in os.listdir(reports) if n.endswith('.json')]) \
        if os.path.isdir(reports) else 0
    print(json.dumps({'state': state.to_json(), 'pending_reports': pending,
                      'report_error': state.report_error}, indent=1))
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    if os.path.exists(args.out):
        raise ValueError(f'{args.out} exists; refusing to overwrite a signing key')
    key = generate_private_key()
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(private_key_pem(key))
    print(public_key_text(key.public_key()))
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    key = load_private_key(args.key)
    now = time.time()
    sequence = args.sequence if args.sequence is not None else int(now)
    signed = build_signed(args.version, args.git_hash.lower(), sequence, now,
                          now + args.expires_days * 86400.0, args.rollout_percent)
    data = (json.dumps(sign(signed, key), indent=1, sort_keys=True) + '\n').encode('utf-8')
    if args.out == '-':
        sys.stdout.write(data.decode('utf-8'))
    else:
        atomic_write(args.out, data)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    with open(args.manifest, 'rb') as handle:
        raw = handle.read(16 * 1024 * 1024)
    manifest = verify(raw, load_public_key(args.public_key), time.time())
    print(json.dumps({'version': manifest.version, 'git_hash': manifest.git_hash,
                      'sequence': manifest.sequence, 'expires': manifest.expires,
                      'rollout_percent': manifest.rollout_percent}))
    return 0


_COMMANDS = {'check': _cmd_check, 'run': _cmd_run, 'status': _cmd_status,
             'keygen': _cmd_keygen, 'sign': _cmd_sign, 'verify': _cmd_verify}


if __name__ == '__main__':
    sys.exit(main())
