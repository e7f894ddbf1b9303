"""Training sees the network's inputs as the backend feeds them: the pre image relit from the DEM
(models.train.get_record -> models.dataset.relit_view), the decision made once per scene and cached with the raw
record, and the front-end measurement caches kept apart from those of raw records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.dataset import ILLUMINATION_KEY, load_record, save_record, scene_to_record
from models.frontcache import meas_path
from models.scene import simulate_scene
from models.train import get_record


def test_records_are_relit_once_and_cached_raw(tmp_path: Path) -> None:
    # simulator seed 9 at 192 x 192, 10 m: sun 60 -> 29 deg elevation on real ASTER relief (tests/test_illumination.py)
    raw = scene_to_record(simulate_scene(9, size=(192, 192), pixel_size_m=10.0))
    path = tmp_path / "scene_00000009.npz"
    save_record(path, raw)
    rec = get_record(tmp_path, 9, 192, "sim")
    fits = json.loads(str(rec[ILLUMINATION_KEY]))
    assert fits["relit"] and fits["similarity"][1] > fits["similarity"][0] + 0.1
    assert not np.allclose(rec["optical_pre"], raw["optical_pre"])  # the view is relit ...
    np.testing.assert_array_equal(rec["optical_post"], raw["optical_post"])  # ... only the pre image
    cached = load_record(path)  # the cache keeps the raw pre image and the decision
    np.testing.assert_array_equal(cached["optical_pre"], raw["optical_pre"])
    assert json.loads(str(cached[ILLUMINATION_KEY])) == fits
    again = get_record(tmp_path, 9, 192, "sim")  # from the cached decision: the same view
    np.testing.assert_array_equal(again["optical_pre"], rec["optical_pre"])
    plain = get_record(tmp_path, 9, 192, "sim", relight=False)
    np.testing.assert_array_equal(plain["optical_pre"], raw["optical_pre"])
    assert meas_path(tmp_path, 9).name == "scene_00000009.relit.meas.npz"
    assert meas_path(tmp_path, 9, relit=False).name == "scene_00000009.meas.npz"
