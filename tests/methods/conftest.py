"""Fixtures the method tests share: one torch thread, and the easy two-section fan set."""

from __future__ import annotations

import shutil

import pytest
import torch

#: sample rate and clip length of the easy set
SR, DUR = 16000, 2.0


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module (the CI box has 2 cores shared with the other xdist worker)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def easy(tmp_path_factory):
    """Fan, two sections (units), 20 source + 4 target training clips and 6 + 6 test clips per domain,
    2 s, no factory background, anomalies at severity 0.9-1.0: ``(train, test, audio)``.

    Generated once per xdist worker (seed 0) and shared by the CLSIA and ProtoASD tests."""
    from auscult.audio import AudioConfig
    from auscult.data.index import DatasetIndex
    from auscult.data.source import AudioSource
    from auscult.data.synth import Preset, generate_dataset

    root = tmp_path_factory.getbasetemp() / "methods_easy_fan"
    if not (root / "synth_config.json").is_file():
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        preset = Preset("easy", "dcase2022", ("fan",), ("00", "01"), 20, 4, 6, 6, DUR)
        generate_dataset(preset, tmp, seed=0, severity_range=(0.9, 1.0), background=False, probe=False,
                         overwrite=True, workers=2)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    idx = DatasetIndex.scan(root)
    audio = AudioSource(AudioConfig(sample_rate=SR, length="tile", duration=DUR), memory=True)
    return idx.select(split="train"), idx.select(split="test"), audio
