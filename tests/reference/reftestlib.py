"""Helpers of the reference-parity tests (``tests/reference``).

* Locating the fixtures: ``../shared/reference`` beside the checkout, or ``$AUSCULT_SHARED_REFERENCE``.
* :class:`Recorded`: read-only access to one ``.npz`` / ``.json`` fixture file that records every key
  a test reads, so the coverage test (``test_ref_zz_coverage.py``) can prove that every file and
  every array of the fixture set is used by an assertion.
* :func:`assert_close`: the comparison every parity test uses; it records the achieved maximum
  absolute and relative (to ``max |ref|``) difference per fixture key, and prints the table at the
  end of the session when ``AUSCULT_REFERENCE_REPORT`` names a file (JSON).
* The explicit name maps from the reference implementations' parameter names to auscult's
  (:func:`osscl_to_auscult`, :func:`asdkit_stft_to_auscult`), and :func:`load_mapped`, which
  loads a mapped state strictly (every auscult entry covered, every shape equal).

Nothing here computes a reference result: the expected values are the stored arrays.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]

#: (file, key) -> number of reads, over the whole session (this process)
ACCESSED: dict[tuple[str, str], int] = {}
#: rows of the achieved-tolerance table: (fixture, key, max abs diff, max|ref|, rel diff, tolerance)
REPORT: list[dict[str, Any]] = []
#: node ids of the tests of this directory that ran in this process
RAN: set[str] = set()


def reference_root() -> Optional[Path]:
    """The folder holding ``osscl/`` and ``asdkit/``, or ``None`` when absent."""
    env = os.environ.get("AUSCULT_SHARED_REFERENCE")
    if env:  # an explicit setting wins, also when it points nowhere (forces the skip)
        return Path(env) if Path(env).is_dir() else None
    default = REPO.parent / "shared" / "reference"
    return default if default.is_dir() else None


def shared_data_root() -> Optional[Path]:
    """``../shared/data`` (or ``$AUSCULT_SHARED_DATA``), as ``tests/conftest.py`` finds it."""
    env = os.environ.get("AUSCULT_SHARED_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    default = REPO.parent / "shared" / "data"
    return default if default.is_dir() else None


class Recorded(Mapping[str, Any]):
    """A fixture file (``.npz`` arrays or ``.json`` values) whose reads are recorded in
    :data:`ACCESSED` under ``"<folder>/<file name>"``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = f"{self.path.parent.name}/{self.path.name}"
        if self.path.suffix == ".npz":
            with np.load(self.path, allow_pickle=False) as z:
                self._data = {k: z[k] for k in z.files}
        else:
            self._data = json.loads(self.path.read_text())
        for k in self._data:
            ACCESSED.setdefault((self.name, k), 0)

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        ACCESSED[(self.name, key)] += 1
        return value

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys_matching(self, prefix: str) -> list[str]:
        return [k for k in self._data if k.startswith(prefix)]

    def tensor(self, key: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        t = torch.from_numpy(np.array(self[key]))
        return t if dtype is None or not t.is_floating_point() else t.to(dtype)


def fixture_files(root: Path) -> list[Path]:
    """Every data file of the fixture set (what the coverage test enumerates)."""
    return sorted(p for p in root.glob("*/*") if p.suffix in (".npz", ".json"))


def as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def assert_close(got: Any, ref: Any, *, what: str, rel: float | None = None, abs_: float | None = None) -> None:
    """``max |got - ref| <= rel * max |ref|`` (and/or ``<= abs_``); records the achieved values.

    Exactly one of ``rel`` / ``abs_`` gives the bound (``rel`` is relative to the array's largest
    magnitude, the README's convention). Shapes must be equal.
    """
    g, r = as_numpy(got).astype(np.float64), as_numpy(ref).astype(np.float64)
    assert g.shape == r.shape, f"{what}: shape {g.shape} != reference {r.shape}"
    assert np.isfinite(g).all(), f"{what}: non-finite values"
    diff = float(np.max(np.abs(g - r))) if g.size else 0.0
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    bound = rel * scale if rel is not None else float(abs_)
    REPORT.append({"what": what, "max_abs": diff, "max_ref": scale,
                   "rel": diff / scale if scale else 0.0, "tol": (f"{rel:g} x max|ref|" if rel is not None
                                                                 else f"{abs_:g} abs")})
    assert diff <= bound, f"{what}: max |diff| {diff:.3e} > {bound:.3e} (max |ref| {scale:.3e})"


def write_report() -> None:
    path = os.environ.get("AUSCULT_REFERENCE_REPORT")
    if path and REPORT:
        Path(path).write_text(json.dumps(REPORT, indent=1))


# ---- name maps ------------------------------------------------------------------------------------
# Each map is a list of (regex on the reference name, replacement giving the auscult name, or None for
# an entry auscult deliberately does not have). Every reference key must match exactly one rule.

#: OS-SCL ``model/net.py: TgramNet`` -> :class:`auscult.nets.TgramNet`
TGRAM_RULES = [
    (r"conv_extrctor\.weight", r"extractor.weight"),  # (sic) the reference's spelling
    (r"conv_encoder\.(\d)\.([02])\.(weight|bias)", r"encoder.\1.\2.\3"),  # 0 LayerNorm, 2 Conv1d
]
#: OS-SCL ``model/waveq.py: TFgram`` (used layers) -> :class:`auscult.nets.TFgramNet`
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
TFGRAM_RULES = [
    (r"pre_conv0\.weight", r"stem.0.weight"),
    (rf"pre_bn0\.{_BN}", r"stem.1.\1"),
    (r"pre_block(\d)\.conv1\.weight", r"block\1.0.weight"),
    (rf"pre_block(\d)\.bn1\.{_BN}", r"block\1.1.\2"),
    (r"pre_block(\d)\.conv2\.weight", r"block\1.3.weight"),
    (rf"pre_block(\d)\.bn2\.{_BN}", r"block\1.4.\2"),
]
#: OS-SCL ``model/net.py: MobileFaceNet`` -> :class:`auscult.nets.MobileFaceNet`
#: (``ConvBlock`` conv/bn/prelu -> ``ConvBNAct`` 0/1/2; a bottleneck's ``conv.j`` -> ``body.(j // 3).(j % 3)``)
MFN_RULES = [
    (r"conv1\.conv\.(.+)", r"stem.0.\1"), (r"conv1\.bn\.(.+)", r"stem.1.\1"), (r"conv1\.prelu\.(.+)", r"stem.2.\1"),
    (r"dw_conv1\.conv\.(.+)", r"dw.0.\1"), (r"dw_conv1\.bn\.(.+)", r"dw.1.\1"), (r"dw_conv1\.prelu\.(.+)", r"dw.2.\1"),
    (r"blocks\.(\d)\.conv\.([012])\.(.+)", r"blocks.\1.body.0.\2.\3"),
    (r"blocks\.(\d)\.conv\.([345])\.(.+)", lambda m: f"blocks.{m[1]}.body.1.{int(m[2]) - 3}.{m[3]}"),
    (r"blocks\.(\d)\.conv\.([67])\.(.+)", lambda m: f"blocks.{m[1]}.body.2.{int(m[2]) - 6}.{m[3]}"),
    (r"conv2\.conv\.(.+)", r"expand.0.\1"), (r"conv2\.bn\.(.+)", r"expand.1.\1"), (r"conv2\.prelu\.(.+)", r"expand.2.\1"),
    (r"linear7\.conv\.(.+)", r"gdconv.0.\1"), (r"linear7\.bn\.(.+)", r"gdconv.1.\1"),
    (r"linear1\.conv\.(.+)", r"project.0.\1"), (r"linear1\.bn\.(.+)", r"project.1.\1"),
    # fc_out: computed by the reference MobileFaceNet, discarded by its full model; auscult has no such layer
    (r"fc_out\.(weight|bias)", None),
]
#: OS-SCL ``BasicHead`` / ``LeakyReLUHead`` -> :class:`auscult.losses.FeaturePerturbationHead` (layout act_bn)
HEAD_RULES = [(r"head\.([0-5])\.(.+)", r"net.\1.\2")]
#: OS-SCL ``losses.py: ArcMarginProduct`` -> :class:`auscult.losses.NoisyArcMix`
ARCFACE_RULES = [(r"weight", r"weight")]

#: full ``SCLTFSTgramMFN`` prefix -> (auscult prefix inside ``OSSCLModel``, rules of that part)
OSSCL_PARTS = {
    "tgramnet.": ("net.tgram.", TGRAM_RULES),
    "TFgramNet.": ("net.tfgram.", TFGRAM_RULES),
    "mobilefacenet.": ("net.mfn.", MFN_RULES),
    "head.": ("head.", HEAD_RULES),
    "arcface.": ("arcmix.", ARCFACE_RULES),
}


def apply_rules(name: str, rules: Iterable[tuple[str, Any]]) -> Optional[str]:
    """The auscult name of reference entry ``name`` (``None``: deliberately unmapped)."""
    hits = []
    for pat, rep in rules:
        m = re.fullmatch(pat, name)
        if m:
            hits.append(None if rep is None else (rep(m) if callable(rep) else m.expand(rep)))
    assert len(hits) == 1, f"reference entry {name!r} matches {len(hits)} rules of the name map"
    return hits[0]


def osscl_to_auscult(name: str) -> Optional[str]:
    """Full-model OS-SCL name (e.g. ``mobilefacenet.blocks.3.conv.4.running_var``) -> the
    ``OSSCLModel`` state name (``net.mfn.blocks.3.body.1.1.running_var``); ``None`` for ``fc_out``."""
    for prefix, (ours, rules) in OSSCL_PARTS.items():
        if name.startswith(prefix):
            rest = apply_rules(name[len(prefix):], rules)
            return None if rest is None else ours + rest
    raise AssertionError(f"no name map for OS-SCL entry {name!r}")


#: asdkit ``STFTEncoderLayer`` (``stft_layer_list.0``) -> auscult ``SpectrogramBranch`` (layout "pre")
ASDKIT_STFT_RULES = [
    (r"stft\.stft\.window", None),  # the Hann window: auscult's front-end builds its own (non-persistent)
    (r"layer\.bn_freq\.(.+)", r"freq_norm.\1"),
    (r"layer\.layers\.0\.layer\.0\.weight", r"stem.0.weight"),
    (r"layer\.layers\.0\.layer\.1\.(.+)", r"stem.1.\1"),
    # stage s (1..4), block b (0..1) -> stages.(2 (s - 1) + b)
    (r"layer\.layers\.([1-4])\.([01])\.(.+)", lambda m: f"stages.{2 * (int(m[1]) - 1) + int(m[2])}."
                                                       + _asdkit_block(m[3])),
    (r"layer\.aggregate_layer\.1\.(.+)", r"out_norm.\1"),
    (r"layer\.aggregate_layer\.2\.weight", r"fc.weight"),
]


def _asdkit_block(rest: str) -> str:
    rules = [
        (r"bn\.(.+)", r"in_norm.\1"),
        (r"layer\.1\.weight", r"body.1.weight"), (r"layer\.2\.(.+)", r"body.2.\1"),
        (r"layer\.4\.weight", r"body.4.weight"),
        (r"additional_layer\.layer1\.0\.weight", r"se.fc1.weight"),
        (r"additional_layer\.layer2\.0\.weight", r"se.fc2.weight"),
        (r"skip_connect\.1\.weight", r"shortcut.1.weight"),
    ]
    out = apply_rules(rest, rules)
    assert out is not None
    return out


def asdkit_stft_to_auscult(name: str) -> Optional[str]:
    return apply_rules(name, ASDKIT_STFT_RULES)


def load_mapped(module: torch.nn.Module, ref: Mapping[str, np.ndarray], mapping: Callable[[str], Optional[str]],
                keep: Iterable[str] = (), dtype: torch.dtype | None = None) -> dict[str, str]:
    """Load reference entries into ``module`` through ``mapping``, strictly: every entry of the
    module's ``state_dict`` except those in ``keep`` receives a reference value with its exact shape,
    no two reference entries land on one auscult entry. Floating values are cast to ``dtype`` (default:
    the module entry's dtype). Returns the map used ``{reference name: auscult name}``."""
    own = module.state_dict()
    new: dict[str, torch.Tensor] = {}
    used: dict[str, str] = {}
    for name in ref:
        target = mapping(name)
        if target is None:
            continue
        assert target in own, f"{name!r} maps to {target!r}, which {type(module).__name__} does not have"
        assert target not in new, f"two reference entries map to {target!r}"
        value = torch.from_numpy(np.array(ref[name]))
        assert tuple(value.shape) == tuple(own[target].shape), \
            f"{name} {tuple(value.shape)} -> {target} {tuple(own[target].shape)}"
        if value.is_floating_point():
            value = value.to(dtype or own[target].dtype)
        new[target] = value
        used[name] = target
    missing = sorted(set(own) - set(new) - set(keep))
    assert not missing, f"auscult entries without a reference value: {missing}"
    for k in keep:
        new.setdefault(k, own[k])
    module.load_state_dict(new, strict=True)
    return used


class Capture:
    """Forward hooks that keep a copy of the named sub-modules' outputs (copies: later in-place
    activations would otherwise change them)."""

    def __init__(self, modules: Mapping[str, torch.nn.Module]):
        self.out: dict[str, torch.Tensor] = {}
        self._handles = [m.register_forward_hook(self._hook(k)) for k, m in modules.items()]

    def _hook(self, key: str):
        def hook(_m, _inp, output):
            self.out[key] = output.detach().clone()
        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
