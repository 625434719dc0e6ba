"""Files only their user can read: what a run keeps (dead letters hold raw records, plans hold user code).

Run directories are created 0700 and the files sluice writes in them 0600, whatever the umask.
"""

from __future__ import annotations

import os

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: str) -> None:
    """Create a directory (and its missing parents) that only its user can enter."""
    os.makedirs(path, mode=PRIVATE_DIR, exist_ok=True)
    if os.stat(path).st_mode & 0o777 != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)


def open_private(path: str, mode: str = "w", **kwargs):
    """Open a file for writing ("w", "wb", "a", "ab") that only its user can read (0600)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, PRIVATE_FILE), mode, **kwargs)


def make_private(path: str) -> None:
    """Make a file written by another library (Arrow) readable by its user only."""
    os.chmod(path, PRIVATE_FILE)
