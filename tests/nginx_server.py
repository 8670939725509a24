"""nginx for the tests of the nginx front (``ixazomib-cds serve --front nginx``).

``ensure_nginx()`` returns the nginx binary the service will find (``cds_service.nginx_front.
find_nginx``); when there is none (a fresh CI machine) it installs Debian's ``nginx`` package
with apt-get (as root), as tests/pg.py does for PostgreSQL. Installing it does not start it
(the tests start their own nginx, on a loopback port, through ``serve``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from cds_service.nginx_front import find_nginx


class NginxUnavailable(RuntimeError):
    """nginx could not be found or installed; the message says why."""


def ensure_nginx() -> str:
    found = find_nginx()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise NginxUnavailable(
            "nginx is missing and cannot be installed here (needs root and apt-get); "
            "install the 'nginx' package"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another apt-get on the machine holds the lock for a while: wait for it.
    command = [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",
        "nginx",
    ]
    attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if attempt.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        attempt = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = find_nginx()
    if attempt.returncode != 0 or found is None:
        raise NginxUnavailable(
            f"apt-get install nginx failed:\n{attempt.stdout[-2000:]}{attempt.stderr[-2000:]}"
        )
    return found
