"""The git working tree that is updated: fetch, exact checkout, HEAD check, via ``git``."""

from __future__ import annotations

import logging
import os
import re
import subprocess

from pianist_ros.ota.errors import DirtyTreeError
from pianist_ros.ota.errors import GitError
from pianist_ros.ota.errors import UnknownCommitError

logger = logging.getLogger(__name__)

_HASH_RE = re.compile(r'^(?:[0-9a-f]{40}|[0-9a-f]{64})$')
_MAX_OUTPUT = 1 << 20


class GitRepo:
    """Run git in one working tree with a timeout; errors become :class:`GitError`."""

    def __init__(self, path: str, remote: str = 'origin', timeout: float = 300.0,
                 git: str = 'git'):
        if not path:
            raise ValueError('repository path is empty')
        self.path = path
        self.remote = remote
        self.timeout = timeout
        self._git = git

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        # Never prompt for credentials or open an editor on an unattended device.
        env.update({'GIT_TERMINAL_PROMPT': '0', 'GIT_ASKPASS': 'true', 'LC_ALL': 'C'})
        try:
            result = subprocess.run([self._git, '-C', self.path, *args], env=env,
                                    stdin=subprocess.DEVNULL, capture_output=True,
                                    timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise GitError(f'git {args[0]} timed out after {self.timeout:g} s') from exc
        except OSError as exc:
            raise GitError(f'cannot run git: {exc}') from exc
        if check and result.returncode != 0:
            err = result.stderr[:2000].decode('utf-8', 'replace').strip()
            raise GitError(f'git {" ".join(args)} failed ({result.returncode}): {err}')
        return result

    def head(self) -> str:
        """Return the commit id HEAD points at.

        :raises GitError: not a repository, or no commit.
        """
        return self._run('rev-parse', '--verify', 'HEAD^{commit}').stdout.decode().strip()

    def dirty_files(self) -> list[str]:
        """Return tracked files with local changes (untracked files do not count).

        Untracked files survive a checkout untouched unless a commit adds the same
        path, and then git itself refuses; caches and logs are therefore allowed.
        """
        out = self._run('status', '--porcelain', '--untracked-files=no').stdout
        return [line[3:] for line in out[:_MAX_OUTPUT].decode('utf-8', 'replace').splitlines()
                if line.strip()]

    def has_commit(self, commit: str) -> bool:
        """Return whether ``commit`` exists locally as a commit object."""
        if not _HASH_RE.match(commit):
            return False
        return self._run('cat-file', '-e', f'{commit}^{{commit}}', check=False).returncode == 0

    def fetch(self) -> None:
        """Fetch branches and tags from the remote.

        :raises GitError: the fetch failed (network, auth, timeout).
        """
        self._run('fetch', '--quiet', '--tags', '--prune', self.remote)

    def fetch_commit(self, commit: str) -> None:
        """Make sure ``commit`` is present: fetch the remote, then the id itself.

        A commit that no branch or tag reaches yet can still be fetched by id from
        servers that allow it (protocol v2 and GitHub do); a failure there is expected.

        :raises UnknownCommitError: the commit is absent after both attempts.
        :raises GitError: the remote fetch failed.
        """
        if self.has_commit(commit):
            return
        self.fetch()
        if self.has_commit(commit):
            return
        self._run('fetch', '--quiet', self.remote, commit, check=False)
        if not self.has_commit(commit):
            raise UnknownCommitError(f'commit {commit} not found in {self.remote}')

    def checkout(self, commit: str) -> None:
        """Check out exactly ``commit`` (detached) and verify HEAD equals it.

        :raises DirtyTreeError: tracked files have local changes.
        :raises UnknownCommitError: the commit is absent.
        :raises GitError: the checkout failed or HEAD is not ``commit`` afterwards.
        """
        dirty = self.dirty_files()
        if dirty:
            raise DirtyTreeError(f'working tree has local changes: {", ".join(dirty[:5])}')
        if not self.has_commit(commit):
            raise UnknownCommitError(f'commit {commit} is not in the repository')
        self._run('checkout', '--quiet', '--detach', commit)
        head = self.head()
        if head != commit:
            raise GitError(f'HEAD is {head} after checking out {commit}')

    def describe_version(self) -> str | None:
        """Return the tag on HEAD without a leading ``v`` (``1.0.0``), or ``None``."""
        result = self._run('describe', '--tags', '--exact-match', 'HEAD', check=False)
        if result.returncode != 0:
            return None
        tag = result.stdout.decode('utf-8', 'replace').strip()
        return tag[1:] if tag[:1] in ('v', 'V') else tag

    def clear_stale_lock(self) -> bool:
        """Remove ``.git/index.lock`` left by a git killed mid-checkout; return if removed.

        Only called when resuming an update this manager was running itself: the
        device tree has no other writer, so a lock at that point is ours.
        """
        lock = os.path.join(self.path, '.git', 'index.lock')
        try:
            os.unlink(lock)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise GitError(f'cannot remove stale {lock}: {exc}') from exc
        logger.debug('removed stale %s', lock)
        return True
