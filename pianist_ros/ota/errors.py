"""The OTA manager's exception hierarchy; every foreign error is wrapped in one of these."""

from __future__ import annotations


class OtaError(Exception):
    """Base class of every error the OTA modules raise."""

    #: Short machine-readable name used as the ``result`` of reports and diagnostics.
    code = 'error'


class FetchError(OtaError):
    """A request failed: connection, timeout, HTTP status, size or scheme."""

    code = 'fetch_error'


class HttpStatusError(FetchError):
    """The server answered with a non-2xx status."""

    def __init__(self, url: str, status: int):
        super().__init__(f'{url}: HTTP {status}')
        self.url = url
        self.status = status


class TooLargeError(FetchError):
    """The body is larger than the configured cap."""


class FetchTimeoutError(FetchError):
    """The request did not finish within its timeout."""


class ManifestError(OtaError):
    """The manifest is malformed: not JSON, wrong types or missing fields."""

    code = 'manifest_invalid'


class SignatureError(ManifestError):
    """The manifest is unsigned, not signed by the pinned key, or the signature is bad."""

    code = 'signature_invalid'


class ExpiredError(ManifestError):
    """The manifest's ``expires`` time has passed."""

    code = 'manifest_expired'


class ReplayError(ManifestError):
    """The manifest's sequence is older than one already accepted (or equivocates)."""

    code = 'manifest_replayed'


class KeyLoadError(OtaError):
    """The pinned public key (or a signing key) cannot be loaded."""

    code = 'key_invalid'


class GitError(OtaError):
    """A git command failed or timed out."""

    code = 'git_error'


class DirtyTreeError(GitError):
    """The working tree has local modifications; updating would destroy them."""

    code = 'refused_dirty_tree'


class UnknownCommitError(GitError):
    """The manifest's git hash does not exist in the repository, even after a fetch."""

    code = 'refused_unknown_hash'


class RestartError(OtaError):
    """The restart command failed or timed out."""

    code = 'restart_failed'


class StateError(OtaError):
    """The persisted state cannot be read or written."""

    code = 'state_error'
