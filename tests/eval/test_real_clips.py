"""The evaluator on real DCASE 2021 clip names and a simple real score (RMS level)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from auscult.data.clip import Clip
from auscult.data.groundtruth import write_ground_truth
from auscult.eval.metrics import MetricInputError
from auscult.eval.protocols import evaluate_scores
from auscult.eval.submission import evaluate_submission, write_submission
from tests.eval.test_metrics import mann_whitney_auc


@pytest.mark.shared_data
def test_gearbox_source_section(shared_data, tmp_path):
    folder = shared_data / "dcase2021-gearbox-s00" / "dev_data" / "gearbox" / "source_test"
    paths = sorted(folder.glob("*.wav"))[::6]  # 50 clips keep the test quick
    clips, scores = [], []
    for p in paths:
        label = "anomaly" if "_anomaly_" in p.name else "normal"
        clips.append(Clip(path=p, machine="gearbox", section="00", domain="source", split="test", label=label, year=2021))
        x, _ = sf.read(p, dtype="float32", frames=16000)
        scores.append(float(np.log(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)))
    scores = np.asarray(scores)
    y = np.array([c.label == "anomaly" for c in clips], dtype=int)
    assert 0 < y.sum() < len(y)

    r = evaluate_scores(clips, scores, 2021)
    assert [row["domain"] for row in r.rows] == ["source"]  # the subset has no target clips
    assert r.rows[0]["auc"] == pytest.approx(mann_whitney_auc(y, scores), abs=1e-12)

    write_ground_truth(clips, tmp_path / "gt", 2021)
    write_submission(clips, scores, None, tmp_path / "sub", 2021)
    assert evaluate_submission(tmp_path / "sub", tmp_path / "gt", 2021).to_dict() == r.to_dict()

    # the 2022+ protocol needs target-domain normals: a clear error, not a silent number
    with pytest.raises(MetricInputError, match="target-domain normal"):
        evaluate_scores(clips, scores, 2023)
