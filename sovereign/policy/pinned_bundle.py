"""The revision an OPA server must report to be believed: that of the bundle this process verified itself.

An OPA server names the revision from its bundle's `.manifest`, and an unsigned bundle can carry any
revision string, so a reported revision proves nothing by itself. The REST engine believes a server only
when it reports the revision of the Rego bundle verified here against the trust anchor. The bundle is
verified again whenever its file or the anchor changes (a rebuild, a ConfigMap update), so a server that
follows the same rebuild keeps agreeing with this process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sovereign.policy.bundle import SignedBundle, unverified_message, verify_built
from sovereign.policy.bundle_signature import BundleUnverified

_FileState = tuple[int, int, int, int] | None  # (device, inode, size, mtime) of a file, None when absent


def _state(path: Path) -> _FileState:
    try:
        st = os.stat(path)  # follows symlinks: a ConfigMap volume swaps its data behind one
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class PinnedBundle:
    """The locally verified revision of `bundle.rego`, or why there is none."""

    def __init__(self, bundle: SignedBundle) -> None:
        self.bundle = bundle
        self._lock = threading.Lock()
        self._seen: tuple[_FileState, _FileState] | None = None
        self._revision: str | None = None
        self._refusal = ""

    def revision(self) -> tuple[str | None, str]:
        """(revision, "") when the bundle verifies with the trust anchor; (None, why not) otherwise."""
        seen = (_state(self.bundle.rego), _state(self.bundle.verification_key))
        with self._lock:
            if seen != self._seen:
                try:
                    self._revision = verify_built(self.bundle.rego, self.bundle.verification_key).revision
                    self._refusal = ""
                except BundleUnverified as exc:
                    self._revision, self._refusal = None, unverified_message(exc)
                except Exception as exc:  # fail closed: a bundle that cannot be checked is not trusted
                    self._revision = None
                    self._refusal = f"cannot verify the policy bundle {self.bundle.rego}: {exc}"
                self._seen = seen
            return self._revision, self._refusal
