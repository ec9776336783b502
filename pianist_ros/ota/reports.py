"""Outcome reports: queued on disk first, then POSTed in order; nothing is lost on failure.

Each report is one JSON file named ``<zero-padded seq>-<id>.json`` in
``<state_dir>/reports``. A report is deleted only after the server answered 2xx, so
delivery is at least once; the ``id`` lets the server drop duplicates.
"""

from __future__ import annotations

import json
import logging
import os
import uuid

from pianist_ros.ota.errors import FetchError
from pianist_ros.ota.errors import StateError
from pianist_ros.ota.fetcher import FetcherInterface
from pianist_ros.ota.state import atomic_write
from pianist_ros.ota.state import fsync_dir

logger = logging.getLogger(__name__)

_MAX_REPORT_BYTES = 65536
_ERROR_TEXT_CAP = 2000


def make_report(device_id: str, result: str, *, from_version: str = '', from_hash: str = '',
                to_version: str = '', to_hash: str = '', error: str = '',
                started_at: float = 0.0, finished_at: float = 0.0) -> dict:
    """Return one report document (the POST body)."""
    return {
        'id': uuid.uuid4().hex,
        'device_id': device_id,
        'result': result,
        'from': {'version': from_version, 'git_hash': from_hash},
        'to': {'version': to_version, 'git_hash': to_hash},
        'error': error[:_ERROR_TEXT_CAP],
        'started_at': started_at,
        'finished_at': finished_at,
    }


class ReportQueue:
    """A FIFO of reports on disk, flushed to ``report_url``."""

    def __init__(self, directory: str, max_pending: int = 1000):
        self.directory = directory
        self.max_pending = max_pending
        self.dropped = 0

    def _names(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f'cannot list {self.directory}: {exc}') from exc
        return sorted(n for n in names if n.endswith('.json') and not n.startswith('.'))

    def pending(self) -> int:
        """Return how many reports wait for delivery."""
        return len(self._names())

    def put(self, report: dict) -> str:
        """Queue ``report`` durably; drop the oldest when the queue is full.

        :raises StateError: the report cannot be written.
        :return: the file name.
        """
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise StateError(f'cannot create {self.directory}: {exc}') from exc
        names = self._names()
        seq = int(names[-1].split('-', 1)[0]) + 1 if names else 1
        while len(names) >= self.max_pending:
            # Bounded disk beats an unbounded queue on a device nobody logs into; the
            # count of dropped reports is itself reported in diagnostics.
            self._remove(names.pop(0))
            self.dropped += 1
        name = f'{seq:012d}-{report["id"]}.json'
        data = json.dumps(report, sort_keys=True).encode('utf-8')
        try:
            atomic_write(os.path.join(self.directory, name), data)
        except OSError as exc:
            raise StateError(f'cannot queue report: {exc}') from exc
        return name

    def peek_all(self) -> list[dict]:
        """Return every queued report, oldest first (unreadable files are skipped)."""
        out = []
        for name in self._names():
            report = self._read(name)
            if report is not None:
                out.append(report)
        return out

    def _read(self, name: str) -> dict | None:
        path = os.path.join(self.directory, name)
        try:
            with open(path, 'rb') as handle:
                report = json.loads(handle.read(_MAX_REPORT_BYTES).decode('utf-8'))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning('unreadable report %s (%s); moving it aside', path, exc)
            try:
                os.replace(path, path + '.bad')
            except OSError:
                pass
            return None
        return report if isinstance(report, dict) else None

    def _remove(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.directory, name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f'cannot remove report {name}: {exc}') from exc

    def flush(self, fetcher: FetcherInterface, url: str, timeout: float) -> tuple[int, str]:
        """POST queued reports oldest first; stop at the first failure.

        :return: ``(sent, error)``; ``error`` is '' when the queue was emptied.
        """
        if not url:
            return 0, 'no report_url configured'
        sent = 0
        for name in self._names():
            report = self._read(name)
            if report is None:
                continue
            try:
                fetcher.post_json(url, report, timeout)
            except FetchError as exc:
                return sent, str(exc)
            self._remove(name)
            sent += 1
        if sent:
            fsync_dir(self.directory)
        return sent, ''
