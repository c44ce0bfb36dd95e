"""Whether this machine lets a test make a user and mount namespace (for real read-only and
full-disk folders): shared by conftest's in_namespace fixture and the tests that mark
themselves with it. A module, not conftest, so that test modules can import it."""

from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def namespaces_work() -> bool:
    """True where `unshare` can make a user and mount namespace and mount a tmpfs in it."""
    if not shutil.which("unshare"):
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d && rmdir $d"
    try:
        done = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", probe],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
