#!/usr/bin/env python3
"""Docker HEALTHCHECK: exit 0 if GET $PIANIST_HEALTH_URL answers 2xx, else 1.

Stdlib only (it runs with whatever python the image has). telemetry_bridge answers
/health with 503 when the stack is unhealthy, which urllib raises as HTTPError.
"""

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = 'http://127.0.0.1:5000/health'
#: /health is a small JSON document; never read more than this from it.
MAX_BYTES = 65536


def main() -> int:
    """Probe the health URL once and return the process exit status."""
    url = os.environ.get('PIANIST_HEALTH_URL', DEFAULT_URL)
    timeout = float(os.environ.get('PIANIST_HEALTH_TIMEOUT_SEC', '4'))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_BYTES)
            status = response.status
    except urllib.error.HTTPError as exc:
        print(f'unhealthy: {url} answered {exc.code}', file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f'unhealthy: {url}: {exc}', file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        print(f'unhealthy: {url} answered {status}', file=sys.stderr)
        return 1
    print(body.decode('utf-8', 'replace')[:200])
    return 0


if __name__ == '__main__':
    sys.exit(main())
