"""An evidence pack's members written back into a gzip'd tar, as a tamperer would (no manifest re-signed)."""

from __future__ import annotations

import io
import tarfile


def archive(members: dict[str, bytes], order: list[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in order or sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()
