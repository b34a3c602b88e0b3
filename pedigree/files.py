"""Files and folders the service creates for itself, private to the user it runs as.

The database, the secret key, the broker's queue and the artifact store hold
tokens, audit rows and customer data: other local users must not read them,
whatever the umask.
"""

from __future__ import annotations

import os
from pathlib import Path


def create_private_file(path: Path) -> None:
    """Create ``path`` (and missing parent folders) readable by this user only, if it does not exist.

    Folders are made 0700 and the file 0600 whatever the umask, so a database
    or a secret created by the service is never readable by other local users.
    """
    if path.exists():
        return
    create_private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # another process created it first
        return
    os.chmod(path, 0o600)


def create_private_dir(path: Path) -> None:
    """Create the folder ``path`` (and its parents) as 0700 when missing; an existing one is left alone."""
    if path.is_dir():
        return
    create_private_dir(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
