"""The Merkle tree over a segment's record lines: pymerkle (RFC 9162 hashing, inclusion and consistency
proofs) on a flat list of leaf hashes.

pymerkle leaves storage to its user (`BaseMerkleTree`'s storage interface); its own in-memory backend keeps
a node object per leaf and per inner node, so the log keeps only the leaf hashes, as pymerkle's README
shows for a list-backed tree. A leaf is SHA-256(0x00 || the record line's bytes), an inner node
SHA-256(0x01 || left || right), as RFC 9162 §2.1 has them.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymerkle import BaseMerkleTree
from pymerkle.hasher import MerkleHasher

ALGORITHM = "sha256"
_HASHER = MerkleHasher(ALGORITHM)


def leaf_hash(line: bytes) -> bytes:
    """The leaf hash of one record line (without its newline)."""
    return _HASHER.hash_buff(line)


class LeafHashes(BaseMerkleTree):
    def __init__(self, hashes: Iterable[bytes] = ()) -> None:
        self.hashes = list(hashes)
        super().__init__(ALGORITHM)

    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        self.hashes.append(digest)
        return len(self.hashes)

    def _get_leaf(self, index: int) -> bytes:
        return self.hashes[index - 1]

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        return self.hashes[offset : offset + width]

    def _get_size(self) -> int:
        return len(self.hashes)
