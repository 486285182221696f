"""The training text: the top-level modules of Python's standard library as Debian installs them.

Rule: every file /usr/lib/python3.11/*.py (top level only, no subdirectories), in byte-wise
sorted order of the file name, concatenated as raw bytes. On Debian 12 these come from the
packages libpython3.11-minimal and libpython3.11-stdlib (3.11.2-6+deb12u6): 171 files,
4,742,373 bytes. The first 90 % of the bytes are the training split, the last 10 % the
validation split (a fixed cut, so validation holds whole modules the model never trained on,
apart from the one file that straddles the cut). The SHA-256 of the concatenation is checked
before anything trains: another Python or package version gives another corpus, and numbers
from it would not be comparable, so it fails instead."""
from __future__ import annotations

import glob
import hashlib
import os

import numpy as np

ROOT = "/usr/lib/python3.11"
FILES = 171
SIZE = 4742373
SHA256 = "6972ca44ed74634672ea777e73d8bd8899e55f419b2ef111d64a012111144b2e"
TRAIN_FRACTION = 0.9


class CorpusError(RuntimeError):
    pass


def file_list(root: str = ROOT) -> list:
    """The corpus files: root/*.py sorted by their bytes (the C locale's order)."""
    return sorted(glob.glob(os.path.join(root, "*.py")), key=os.fsencode)


def load(root: str = ROOT, sha256: str = SHA256):
    """(train, validation) as uint8 arrays; CorpusError when the text is not the recorded one."""
    files = file_list(root)
    data = b"".join(open(f, "rb").read() for f in files)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise CorpusError(
            f"corpus: {len(files)} files, {len(data)} bytes under {root}/*.py with SHA-256 "
            f"{digest}; expected {FILES} files, {SIZE} bytes, SHA-256 {sha256} (Debian 12's "
            "libpython3.11-minimal and libpython3.11-stdlib 3.11.2-6+deb12u6)")
    arr = np.frombuffer(data, dtype=np.uint8)
    cut = int(len(arr) * TRAIN_FRACTION)
    return arr[:cut], arr[cut:]
