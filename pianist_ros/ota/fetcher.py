"""HTTP I/O behind a small interface, in the shape of python-tuf ngclient's FetcherInterface.

Subclasses implement :meth:`FetcherInterface._request`; the public methods cap the
body size, enforce a total timeout and wrap every foreign error in
:class:`~pianist_ros.ota.errors.FetchError`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
import http.client
import json
import logging
import socket
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

from pianist_ros.ota.errors import FetchError
from pianist_ros.ota.errors import FetchTimeoutError
from pianist_ros.ota.errors import HttpStatusError
from pianist_ros.ota.errors import TooLargeError

logger = logging.getLogger(__name__)

_CHUNK = 8192
_ERROR_BODY_CAP = 4096
_ALLOWED_SCHEMES = ('http', 'https')


@dataclass(frozen=True)
class Response:
    """Status and (size-capped) body of one HTTP exchange."""

    status: int
    body: bytes


class FetcherInterface(abc.ABC):
    """Download and upload small documents with caps; subclasses do the transport."""

    @abc.abstractmethod
    def _request(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
                 timeout: float, max_bytes: int) -> Response:
        """Perform one request; may raise anything, the caller wraps it."""

    def request(self, method: str, url: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 10.0,
                max_bytes: int = 65536) -> Response:
        """Perform one request and return its response, whatever the status.

        :raises FetchError: bad URL scheme, connection failure, timeout or oversize body.
        """
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in _ALLOWED_SCHEMES:
            raise FetchError(f'{url!r}: only http and https URLs are allowed')
        try:
            return self._request(method, url, body, dict(headers or {}), timeout, max_bytes)
        except FetchError:
            raise
        except (socket.timeout, TimeoutError) as exc:
            raise FetchTimeoutError(f'{url}: timed out after {timeout:g} s') from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise FetchTimeoutError(f'{url}: timed out after {timeout:g} s') from exc
            raise FetchError(f'{url}: {exc.reason}') from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise FetchError(f'{url}: {exc!r}') from exc

    def fetch(self, url: str, timeout: float, max_bytes: int) -> bytes:
        """GET ``url`` and return its body.

        :raises HttpStatusError: the status is not 2xx.
        :raises TooLargeError: the body is larger than ``max_bytes``.
        :raises FetchTimeoutError: the whole exchange took longer than ``timeout``.
        :raises FetchError: any other transport failure.
        """
        response = self.request('GET', url, timeout=timeout, max_bytes=max_bytes)
        if not 200 <= response.status < 300:
            raise HttpStatusError(url, response.status)
        return response.body

    def post_json(self, url: str, document: Any, timeout: float) -> int:
        """POST ``document`` as JSON and return the status (2xx only).

        :raises HttpStatusError: the status is not 2xx.
        :raises FetchError: any transport failure.
        """
        body = json.dumps(document, sort_keys=True).encode('utf-8')
        response = self.request('POST', url, body=body, timeout=timeout, max_bytes=4096,
                                headers={'Content-Type': 'application/json'})
        if not 200 <= response.status < 300:
            raise HttpStatusError(url, response.status)
        return response.status


class UrllibFetcher(FetcherInterface):
    """Fetcher on the standard library; the timeout bounds the whole exchange."""

    def __init__(self, user_agent: str = 'pianist-ota'):
        self._user_agent = user_agent

    def _request(self, method, url, body, headers, timeout, max_bytes) -> Response:
        deadline = time.monotonic() + timeout
        headers.setdefault('User-Agent', self._user_agent)
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            handle = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
        except urllib.error.HTTPError as exc:
            # Error statuses are answers too (a 503 /health says why); keep a capped body.
            with exc:
                return Response(exc.code, exc.read(min(max_bytes, _ERROR_BODY_CAP)))
        with handle:
            length = handle.headers.get('Content-Length')
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise TooLargeError(f'{url}: Content-Length {length} > {max_bytes} bytes')
            chunks = []
            size = 0
            while True:
                # urlopen's timeout bounds each socket read; the deadline bounds the sum,
                # so a server dripping one byte at a time cannot hold us forever.
                if time.monotonic() > deadline:
                    raise FetchTimeoutError(f'{url}: timed out after {timeout:g} s')
                chunk = handle.read(min(_CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError(f'{url}: body larger than {max_bytes} bytes')
            return Response(handle.status, b''.join(chunks))
