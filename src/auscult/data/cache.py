"""A decoded-waveform cache: decode each file once, memory-map it ever after.

Layout under ``cache_dir`` (format version ``v1``)::

    v1/wave/<k[:2]>/<k>.npy     the decoded waveform (float32 at the configured rate: ``[T]``,
                                or ``[2, T]`` under the channel policy ``both``)
    v1/meta/<p[:2]>/<p>.json    per source path: size, mtime_ns, inode -> content hash

**Key.** A waveform is keyed by ``blake2b(file bytes)`` plus the decode-relevant part of the
:class:`~auscult.audio.AudioConfig` (sample rate, channel policy, resample flag). Keying by
content, not by path, means an edited file can never be served stale, and renamed or copied
files share one entry. Hashing the bytes on every load would re-read every file each epoch,
so the hash is memoised per path under the ``(size, mtime_ns, inode)`` stat tuple: a later
load costs one ``stat`` and one small JSON read, then maps the ``.npy``. Any change to the
file's size, modification time (nanoseconds) or inode triggers a re-hash.

The length policy (crop / tile / random offset) is applied after the cache, on the mapped
array, so random crops stay random and one entry serves every clip length.

**Safety.** Every file is written to a temporary name in the destination folder and moved
into place with ``os.replace`` (atomic on POSIX): a reader never sees a half-written entry,
and two processes filling the same entry both write identical bytes, the last rename wins.
An entry that fails to load (disk full, manual tampering) is deleted and decoded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..audio import AudioConfig, apply_length, decode_audio

FORMAT = "v1"
_CHUNK = 1 << 20


def file_content_hash(path: Union[str, Path]) -> str:
    """``blake2b`` (128-bit) of a file's bytes, hex."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while True:
            b = f.read(_CHUNK)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _atomic_write_bytes(dest: Path, write) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        # no fsync: it costs ~20 ms per entry; a crash can at worst leave an empty or short
        # entry, which ``decoded`` detects on load, deletes and rebuilds
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class WaveformCache:
    """Decode once, memory-map afterwards.

    Args:
        cache_dir: where entries live (created on first write).
        config: the :class:`AudioConfig` used to decode and to apply the length policy.

    Attributes:
        hits / misses: loads served from the cache / that had to decode.
    """

    def __init__(self, cache_dir: Union[str, Path], config: Optional[AudioConfig] = None):
        self.cache_dir = Path(cache_dir)
        self.config = config or AudioConfig()
        self.hits = 0
        self.misses = 0
        self._hash_memo: dict[tuple, str] = {}

    # -------------------------------------------------------------------- keys
    def _stat_key(self, path: Path) -> tuple:
        st = path.stat()
        return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)

    def content_hash(self, path: Union[str, Path]) -> str:
        """The file's content hash, memoised in memory and on disk under its stat tuple."""
        path = Path(path)
        sk = self._stat_key(path)
        if sk in self._hash_memo:
            return self._hash_memo[sk]
        pkey = hashlib.blake2b(sk[0].encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        meta = self.cache_dir / FORMAT / "meta" / pkey[:2] / f"{pkey}.json"
        digest = None
        try:
            m = json.loads(meta.read_text())
            if [m.get("size"), m.get("mtime_ns"), m.get("ino")] == list(sk[1:]):
                digest = m.get("content")
        except (OSError, ValueError):
            pass
        if not isinstance(digest, str):
            digest = file_content_hash(path)
            payload = json.dumps({"path": sk[0], "size": sk[1], "mtime_ns": sk[2], "ino": sk[3],
                                  "content": digest}).encode()
            _atomic_write_bytes(meta, lambda f: f.write(payload))
        self._hash_memo[sk] = digest
        return digest

    def entry_path(self, path: Union[str, Path]) -> Path:
        """Where the decoded waveform of ``path`` under this config lives."""
        k = hashlib.blake2b(f"{self.content_hash(path)}|{self.config.decode_key()}".encode(),
                            digest_size=16).hexdigest()
        return self.cache_dir / FORMAT / "wave" / k[:2] / f"{k}.npy"

    # -------------------------------------------------------------------- loads
    def decoded(self, path: Union[str, Path]) -> np.ndarray:
        """The decoded waveform (no length policy): a read-only memory map on a hit."""
        path = Path(path)
        if not path.is_file():
            decode_audio(path, self.config)  # raises the typed error naming the file
        entry = self.entry_path(path)
        if entry.is_file():
            try:
                x = np.load(entry, mmap_mode="r", allow_pickle=False)
                ndim = 2 if self.config.n_channels == 2 else 1
                if x.dtype == np.float32 and x.ndim == ndim and x.shape[-1] > 0:
                    self.hits += 1
                    return x
            except (OSError, ValueError):
                pass
            try:
                entry.unlink()
            except OSError:
                pass
        x = decode_audio(path, self.config)
        self.misses += 1
        _atomic_write_bytes(entry, lambda f: np.save(f, x, allow_pickle=False))
        return x

    def load(self, path: Union[str, Path], rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Like :func:`auscult.audio.load_audio`, from the cache: a writable float32 array
        (``[T]``, or ``[2, T]`` under the channel policy ``both``)."""
        return apply_length(self.decoded(path), self.config, rng=rng, path=path)

    def __repr__(self) -> str:
        return f"WaveformCache({str(self.cache_dir)!r}, hits={self.hits}, misses={self.misses})"
