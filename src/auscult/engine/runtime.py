"""Runtime set-up: device choice, CPU threads, the glibc allocator, seeds.

Call :func:`setup_runtime` once at start-up, before the first large tensor is allocated.

The allocator tuning matters on CPU: glibc's ``malloc`` serves large blocks with ``mmap`` and
returns them to the kernel on ``free``. A conv net's training step allocates and frees many large
activation buffers, so every step pays for fresh page faults and zeroing. Disabling ``mmap`` for
``malloc`` (``M_MMAP_MAX=0``) and raising the trim threshold keeps those pages in the process heap
for reuse. ``benchmarks/bench_allocator.py`` measures the effect on this machine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import random
import warnings
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)

# glibc <malloc.h> parameter numbers
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

DEFAULT_TRIM_THRESHOLD = 1 << 30  # 1 GiB: keep freed memory in the heap for reuse

_ALLOCATOR_TUNED = False


def _libc() -> Any | None:
    """Return the glibc handle, or None when the C library is not glibc (musl, macOS, Windows)."""
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return None  # musl has no gnu_get_libc_version and ignores these parameters
    return libc


def tune_allocator(mmap_max: int = 0, trim_threshold: int = DEFAULT_TRIM_THRESHOLD) -> bool:
    """Tune glibc ``malloc`` for training: no ``mmap`` for large blocks, a large trim threshold.

    Returns True when both ``mallopt`` calls succeeded, False when the C library is not glibc or
    refused (nothing is changed then, and nothing raises). Safe to call more than once.
    Set ``AUSCULT_ALLOCATOR=default`` in the environment to skip it.
    """
    global _ALLOCATOR_TUNED
    if os.environ.get("AUSCULT_ALLOCATOR", "").lower() in ("default", "off", "0"):
        return False
    libc = _libc()
    if libc is None:
        return False
    try:
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        ok = libc.mallopt(M_MMAP_MAX, int(mmap_max)) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, int(min(trim_threshold, 2**31 - 1))) == 1 and ok
    except (AttributeError, OSError, ctypes.ArgumentError):  # pragma: no cover - exotic libc
        return False
    _ALLOCATOR_TUNED = ok
    return ok


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` succeeded in this process."""
    return _ALLOCATOR_TUNED


def resolve_device(device: str = "auto") -> "Any":
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` into a ``torch.device``.

    ``auto`` picks CUDA when available, else MPS, else CPU. Asking for a device that is not there
    raises :class:`ConfigError` saying so.
    """
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available (use --device auto or cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise ConfigError(f"device {device!r} requested but MPS is not available (use --device auto or cpu)")
    return dev


def default_num_threads() -> int:
    """CPU threads for intra-op parallelism: ``OMP_NUM_THREADS`` when it is set to a positive integer
    (the user's limit, as torch itself reads it at start-up; on a shared machine a run that set it to 1
    used to be raised to every CPU here), else the CPUs this process may run on (affinity-aware)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return n
        warnings.warn(f"OMP_NUM_THREADS={env!r} is not a positive integer: ignored, using the CPUs available "
                      f"to this process", RuntimeWarning, stacklevel=2)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default: the CPUs available to this process); return the value."""
    import torch

    n = default_num_threads() if n is None or n <= 0 else int(n)
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RuntimeInfo:
    """What :func:`setup_runtime` chose; written to the run directory."""

    device: str
    num_threads: int
    allocator_tuned: bool
    deterministic: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def setup_runtime(
    device: str = "auto",
    num_threads: int | None = None,
    tune_malloc: bool | None = None,
    deterministic: bool = False,
) -> RuntimeInfo:
    """One-call start-up: resolve the device, set CPU threads, tune the allocator.

    ``tune_malloc=None`` tunes it when training on CPU (where it was measured to help; on GPU the
    host allocator is not on the hot path and is left alone). ``deterministic`` asks torch for
    deterministic kernels (cuDNN benchmark off).
    """
    import torch

    dev = resolve_device(device)
    if tune_malloc is None:
        tune_malloc = dev.type == "cpu"
    tuned = tune_allocator() if tune_malloc else allocator_tuned()
    threads = set_num_threads(num_threads)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    info = RuntimeInfo(device=str(dev), num_threads=threads, allocator_tuned=tuned, deterministic=deterministic)
    log.debug("runtime: %s", info)
    return info
