"""A tiny synthetic DCASE-layout dataset shared by the pipeline tests (generated once per session)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """fan + valve, section 00, 2 s clips: 20 training clips (16 source + 4 target) and 16 test
    clips per machine (labels and domains in the file names)."""
    from auscult.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("tiny_synth") / "data"
    generate_dataset("demo", root, seed=0, machines=["fan", "valve"], scale=0.4, duration=2.0, workers=1,
                     probe=False)
    return root


@pytest.fixture(scope="session")
def wave_cache(tmp_path_factory):
    """A waveform cache shared by the tests (content-keyed, so datasets with renamed files share it)."""
    return tmp_path_factory.mktemp("wave_cache")
