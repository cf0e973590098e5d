"""CPU fast paths shared by every method: what they are, which are on, how to switch them.

The training and scoring code of every method goes through the same few places (the nets in
:mod:`auscult.nets`, :func:`auscult.nets.inference.inference_copy`, the engine's
:class:`~auscult.engine.Trainer`, the log-mel front-end), so the fast paths live there and a method
gets them without asking. Each one changes how the arithmetic is laid out, not what is computed:
results agree with the plain path to float rounding (``tests/reference`` checks the OS-SCL model
through them against the authors' numbers; ``benchmarks/bench_reference_speed.py`` measures each).

On by default (CPU only; other devices run the plain path):

* ``channels_last`` -- scoring: the inference copy every method scores with
  (:func:`auscult.nets.inference.inference_copy`) runs its 2-D convolutions in NHWC layout with
  batch norm folded (oneDNN's CPU convolutions run faster on NHWC).
* ``fused_prelu`` -- PReLU's backward as one fused, vectorised kernel (compiled once with
  ``torch.compile`` and cached on disk) instead of ATen's scalar two-output kernel, 4x faster; the
  forward stays ATen's. Falls back to ATen by itself where compiling fails (no C compiler).
* ``waveform`` -- the TFgram branch: in training its 4x max-pool as a reshape + max and ATen's
  adaptive max-pool (same values and gradients, less index bookkeeping); in eval mode every 1-D
  convolution on channels-last activations (no layout reorders around oneDNN, ~20 % less time).

Off by default (opt-in, measured):

* ``train_channels_last`` -- 2-D convolution nets train in NHWC layout: the trainer converts the conv
  weights for the duration of ``fit`` (the first NHWC conv turns every later activation NHWC), with
  batch-norm statistics accumulated as accurately as the NCHW kernel does
  (:class:`auscult.nets.layers.BatchNorm2d`). The same computation (one SSL4ASD training step agrees
  with the NCHW step to 1e-13 in float64), but float32 rounds differently (~1e-5 relative in the
  gradients), the OS-SCL training step then exceeds the reference-parity bound on the logits
  (3.4e-3 vs 1.6e-3: the feature perturbation head's 4-sample batch norm amplifies rounding), and
  the small-data trainings this changes are chaotic: over 13 seeds of the SSL4ASD beats-chance
  test's training the mean AUC was 0.538 +- 0.055 with it and 0.580 +- 0.035 without (not
  significant as a loss of quality, not evidence of none either). Measured gain alone: ~1.07x.
  Hence opt-in (``AUSCULT_FASTPATH=train_channels_last=1``).
* ``bf16`` -- ``auto``: bfloat16 autocast of the TFgram branch in training where the CPU has native
  bf16 instructions (``avx512_bf16`` or AMX), fp32 elsewhere; ``on``: wherever torch allows it
  (emulated bf16 is slow); ``off`` (default). A recipe's ``train.amp: bf16`` asks for ``auto`` for
  one run. bf16 keeps ~3 significant digits: it does not pass the float32 reference-parity bounds,
  so it is never on unless asked for. (Autocasting MobileFaceNet too measured slower.)

``torch.compile`` of whole networks was measured (``benchmarks/bench_reference_speed.py``) and is
not a setting: slower than the targeted kernels above for training, no gain for scoring, and 30-90 s
of compilation per process.

Set them for a process with the environment variable ``AUSCULT_FASTPATH`` (comma-separated
``name=value``; ``0/1``, ``off/on``, ``false/true``), e.g. ``AUSCULT_FASTPATH=channels_last=0,fused_prelu=0``
or ``AUSCULT_FASTPATH=plain`` for the plain path, or in code with :func:`configure` (returns the previous settings) or the
:func:`overridden` context manager. ``AUSCULT_CPU_BF16=0`` makes :func:`cpu_has_native_bf16` answer
False (to test the fp32 fallback on a bf16 CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..errors import ConfigError

log = logging.getLogger("auscult.engine.fastpath")

BF16_MODES = ("off", "auto", "on")
_TRUE = ("1", "on", "true", "yes")
_FALSE = ("0", "off", "false", "no")


@dataclass(frozen=True)
class FastPath:
    """Which CPU fast paths are on (see the module docstring)."""

    channels_last: bool = True
    train_channels_last: bool = False
    fused_prelu: bool = True
    waveform: bool = True
    bf16: str = "off"

    def __post_init__(self) -> None:
        if self.bf16 not in BF16_MODES:
            raise ConfigError(f"fast path bf16={self.bf16!r}: choose one of {BF16_MODES}")

    @classmethod
    def parse(cls, spec: str, base: "FastPath | None" = None) -> "FastPath":
        """``"channels_last=0,bf16=auto"`` -> settings (unnamed fields keep ``base``'s values; the word
        ``plain`` turns every fast path off first, e.g. ``"plain,fused_prelu=1"``)."""
        base = base or cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            if item.lower() == "plain":  # every fast path off, then the named ones
                base = cls.plain()
                continue
            name, sep, raw = item.partition("=")
            name, raw = name.strip().lower(), raw.strip().lower()
            if name not in fields or not sep:
                raise ConfigError(f"AUSCULT_FASTPATH: {item!r} is not name=value with a name from {sorted(fields)}")
            if name == "bf16":
                values[name] = {"1": "on", "true": "on", "0": "off", "false": "off"}.get(raw, raw)
            elif raw in _TRUE or raw in _FALSE:
                values[name] = raw in _TRUE
            else:
                raise ConfigError(f"AUSCULT_FASTPATH: {name}={raw!r} must be 0/1, on/off or true/false")
        return dataclasses.replace(base, **values)

    @classmethod
    def plain(cls) -> "FastPath":
        """Every fast path off: the eager computation as written."""
        return cls(channels_last=False, train_channels_last=False, fused_prelu=False, waveform=False, bf16="off")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _from_env() -> FastPath:
    return FastPath.parse(os.environ.get("AUSCULT_FASTPATH", ""))


_SETTINGS = _from_env()


def settings() -> FastPath:
    """The fast-path settings in force."""
    return _SETTINGS


def configure(new: FastPath | None = None, **changes: Any) -> FastPath:
    """Replace the settings (``new``, then ``changes`` on top); returns the previous ones."""
    global _SETTINGS
    old = _SETTINGS
    _SETTINGS = dataclasses.replace(new or old, **changes)
    return old


@contextlib.contextmanager
def overridden(new: FastPath | None = None, **changes: Any) -> Iterator[FastPath]:
    """``with overridden(channels_last=False): ...`` -- settings changed inside the block only."""
    old = configure(new, **changes)
    try:
        yield _SETTINGS
    finally:
        configure(old)


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic instructions (``avx512_bf16`` or AMX-BF16), read
    from ``/proc/cpuinfo`` (False where that is not available, e.g. macOS). ``AUSCULT_CPU_BF16=0``
    forces False, ``=1`` forces True."""
    forced = os.environ.get("AUSCULT_CPU_BF16", "").strip().lower()
    if forced in _TRUE:
        return True
    if forced in _FALSE:
        return False
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_flags_summary() -> str:
    """The SIMD flags that matter here (``avx2 avx512f avx512_bf16 ...``), for logs and benchmarks."""
    keep = [f for f in sorted(_cpu_flags()) if f.startswith(("avx", "amx", "fma"))]
    return " ".join(keep) or "unknown"


def use_cpu_bf16(requested: str | None = None) -> bool:
    """Whether CPU training should autocast to bfloat16: ``requested`` (a recipe's ``amp``) or the
    ``bf16`` fast-path setting ``on``; ``auto``/``bf16`` only where the CPU has native bf16."""
    mode = settings().bf16
    if requested in ("bf16",):
        mode = "auto" if mode == "off" else mode
    if mode == "on":
        return True
    return mode == "auto" and cpu_has_native_bf16()


def compiling() -> bool:
    """True while torch.compile traces (fast paths then step aside: inductor fuses by itself)."""
    try:
        import torch

        return bool(torch.compiler.is_compiling())
    except (ImportError, AttributeError):  # pragma: no cover - old torch
        return False


class CompiledKernel:
    """A small function compiled with ``torch.compile`` on first use, falling back to ``eager``.

    ``kernel(*args)`` calls the compiled ``fn`` (dynamic shapes: one compilation serves every size
    of the same rank and layout; inductor caches the code on disk, so later processes load it in
    about a second). If compiling or running the compiled code raises (no C compiler, an
    unsupported platform), the kernel logs one warning and calls ``eager`` from then on.
    """

    def __init__(self, fn: Callable[..., Any], eager: Callable[..., Any], name: str):
        self.fn, self.eager, self.name = fn, eager, name
        self._compiled: Callable[..., Any] | None = None
        self._failed = False
        self._lock = threading.Lock()

    @property
    def failed(self) -> bool:
        return self._failed

    def __call__(self, *args: Any) -> Any:
        if self._failed:
            return self.eager(*args)
        if self._compiled is None:
            with self._lock:
                if self._compiled is None and not self._failed:
                    try:
                        import torch

                        self._compiled = torch.compile(self.fn, dynamic=True)
                    except Exception as e:  # noqa: BLE001 - any failure means: use the eager code
                        self._fail(e)
                        return self.eager(*args)
        try:
            return self._compiled(*args)  # type: ignore[misc]
        except Exception as e:  # noqa: BLE001
            self._fail(e)
            return self.eager(*args)

    def _fail(self, e: BaseException) -> None:
        self._failed = True
        log.warning("fast path %s: torch.compile is not usable here (%s: %s); using the plain kernel",
                    self.name, type(e).__name__, str(e).splitlines()[0] if str(e) else "")


def train_autocast(x: Any) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for a net's body while training on CPU with the ``bf16`` fast path on
    (:func:`use_cpu_bf16`); a no-op otherwise (scoring, other devices, fp32). The nets cast their
    output back to float32, so heads and losses stay in float32."""
    import torch

    if (getattr(x, "device", None) is not None and x.device.type == "cpu" and torch.is_grad_enabled()
            and settings().bf16 != "off" and use_cpu_bf16() and not compiling()):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_training_layout(model: Any, device: Any = "cpu") -> bool:
    """The training layout of the ``train_channels_last`` fast path (opt-in), in place: NHWC weights for every 2-D
    convolution when training on CPU (the trainer does this for the duration of ``fit``). Returns
    whether anything was converted; :func:`to_default_layout` undoes it."""
    import torch
    from torch import nn

    if not (torch.device(device).type == "cpu" and settings().train_channels_last
            and any(isinstance(m, nn.Conv2d) for m in model.modules())):
        return False
    model.to(memory_format=torch.channels_last)
    return True


def to_default_layout(model: Any) -> None:
    """Back to the default (contiguous, NCHW) layout, in place."""
    import torch

    model.to(memory_format=torch.contiguous_format)


def prepare_fast(module: Any, kind: str = "") -> Any:
    """``module`` as the fast paths run it: for scoring (any ``kind`` not ending in ``_train``) the
    inference copy every method scores with (:func:`auscult.nets.inference.inference_copy`: batch
    norm folded, channels-last); for training (``kind`` ending in ``_train``) the same module in the
    trainer's layout (:func:`to_training_layout`). The other fast paths (fused PReLU backward,
    waveform branch) are inside the nets and follow :func:`settings`.

    Its signature is the reference-parity tests' hook: ``AUSCULT_REFERENCE_PREPARE=
    auscult.engine.fastpath:prepare_fast`` runs ``tests/reference`` through these paths.
    """
    if kind.endswith("_train"):
        device = next((p.device for p in module.parameters()), "cpu")
        to_training_layout(module, device)
        return module
    from ..nets.inference import inference_copy

    return inference_copy(module)
