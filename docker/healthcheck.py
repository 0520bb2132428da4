"""Container health probe for the reward server: exit 0 only when ``GET /ready`` answers 2xx.

Why a script rather than ``curl``: the slim image has no curl. Standard library only, so it adds nothing to
the image. ``/ready`` needs no key, even with ``--api-key-env`` (which a container always uses, since it binds
0.0.0.0); the key is still sent when set, so ``RRG_REWARD_HEALTH_URL`` may name a route that needs it.

Environment: ``RRG_REWARD_HEALTH_URL`` (default ``http://127.0.0.1:$RRG_REWARD_PORT/ready``,
port 8000), ``RRG_REWARD_API_KEY`` (sent as ``Authorization: Bearer`` when set),
``RRG_REWARD_HEALTH_TIMEOUT`` (seconds, default 5).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_url() -> str:
    url = os.environ.get("RRG_REWARD_HEALTH_URL")
    if url:
        return url
    port = os.environ.get("RRG_REWARD_PORT", "8000")
    return f"http://127.0.0.1:{port}/ready"


def main() -> int:
    url = probe_url()
    request = urllib.request.Request(url, method="GET")
    key = os.environ.get("RRG_REWARD_API_KEY")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    timeout = float(os.environ.get("RRG_REWARD_HEALTH_TIMEOUT", "5"))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as err:  # 503 while the models load or drain; 401 from a keyed URL
        print(f"{url} answered {err.code}: {err.read(200).decode('utf-8', 'replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as err:  # not listening yet, or timed out
        print(f"{url} unreachable: {err}", file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        print(f"{url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
