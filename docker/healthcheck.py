"""The image's HEALTHCHECK: decide from the container's main command what "healthy" means.

``newsletter web``: ``GET /healthz`` on the port it serves answers 200 (the app's own check
that the database answers). ``newsletter worker``: its own ``GET /healthz`` on
``NEWSLETTER_WORKER_HEALTH_PORT`` (the image sets 8001) answers 200: its scheduler runs, the
database answers and no send is stalled (a 503 prints the stall's line). Without that port,
``newsletter subscribers count`` succeeds, so the configuration loads and the database
answers. Anything else (a one-off ``run``, the fake provider): healthy while it runs.
Standard library only; exit 0 healthy, 1 not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_WEB_PORT = 8000


def main_command(cmdline: bytes) -> list[str]:
    """PID 1's argv; with `init: true` that is docker-init, whose argv ends with the command."""
    return [arg.decode("utf-8", "replace") for arg in cmdline.split(b"\0") if arg]


def role(argv: list[str]) -> str:
    """``web``, ``worker`` or ``other``: the subcommand given to the newsletter program."""
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "newsletter":
            return _subcommand(argv[i + 1:])
    return "other"


def _subcommand(args: list[str]) -> str:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--config":  # the only group option that takes a value
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in ("web", "worker") else "other"
    return "other"


def web_port(argv: list[str], environ: dict[str, str]) -> int:
    """The port given with ``--port`` (or ``--port=``), else ``NEWSLETTER_WEB_PORT``, else 8000."""
    for i, arg in enumerate(argv):
        if arg == "--port" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--port="):
            return int(arg.partition("=")[2])
    return int(environ.get("NEWSLETTER_WEB_PORT") or DEFAULT_WEB_PORT)


def worker_health_port(environ: dict[str, str]) -> int:
    """``NEWSLETTER_WORKER_HEALTH_PORT``; 0 (none) when unset, empty or not a number."""
    value = (environ.get("NEWSLETTER_WORKER_HEALTH_PORT") or "0").strip()
    return int(value) if value.isdigit() else 0


def check_web(port: int) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status == 200, f"{url} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}{_why(exc)}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def _why(answer: urllib.error.HTTPError) -> str:
    """The worker's 503 says why in JSON: its status and each stall's line."""
    try:
        body = json.loads(answer.read(64 * 1024))
    except (OSError, ValueError):
        return ""
    if not isinstance(body, dict):
        return ""
    said = [str(body.get("status", ""))] + [str(s) for s in body.get("stalls") or ()]
    return ": " + "; ".join(s for s in said if s) if any(said) else ""


def check_worker() -> tuple[bool, str]:
    try:
        done = subprocess.run(["newsletter", "subscribers", "count", "--format", "json"],
                              capture_output=True, text=True, timeout=12)
    except subprocess.TimeoutExpired:
        return False, "newsletter subscribers count did not answer within 12 s"
    if done.returncode != 0:
        return False, (done.stderr.strip().splitlines() or ["failed"])[-1]
    return True, "database answers"


def main() -> int:
    try:
        argv = main_command(Path("/proc/1/cmdline").read_bytes())
    except OSError:
        argv = []
    kind = role(argv)
    if kind == "web":
        ok, detail = check_web(web_port(argv, dict(os.environ)))
    elif kind == "worker":
        port = worker_health_port(dict(os.environ))
        ok, detail = check_web(port) if port else check_worker()
    else:
        ok, detail = True, "running"
    print(detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
