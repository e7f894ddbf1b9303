"""Slope of the network's fault-parallel estimate against the truth on the simulated Mw 6.9 rupture, per modality
combination and front-end setting, and of each of its fixed SAR / optical candidates (docs/geologist_tools.md,
"Which inputs for offsets"; models/MODEL_CARD.md, the SAR item).

    .venv/bin/python tools/fault_slope.py [--size 768] [--combos all,optical] [--sar-psf PX] [--candidates]
        [--ckpt runs/warp_fusion_blind/best.pt]

``models.simulate --seed 7 --size S S --pixel 10``, the pre image relit as the backend does; the shipped weights
rebuilt in PyTorch (``tools/checkpoint_from_onnx.py`` writes the checkpoint) with the export settings. Pixels 50-1000
m from the trace, a 16-px border left out; slope = least squares through the origin of estimate on truth (px),
and the median |error| (px). ``--sar-psf 0`` re-simulates with simulator v1's aliased SAR texture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.features import build_features, compute_stats  # noqa: E402
from models import evaluate as ev  # noqa: E402
from models import fault_metrics as fm  # noqa: E402
from models import fusion as fu  # noqa: E402
from models.dataset import COMBOS, add_illumination_fits, arrays_for, relit_view, scene_to_record  # noqa: E402
from models.export import EXPORT_SETTINGS, load_checkpoint  # noqa: E402
from models.scene import simulate_scene  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--combos", default="all,optical")
    ap.add_argument("--sar-psf", type=float, default=None)
    ap.add_argument("--candidates", action="store_true", help="also each fixed candidate of the 'all' run")
    ap.add_argument("--ckpt", type=Path, default=Path("runs/warp_fusion_blind/best.pt"))
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    model, _ = load_checkpoint(a.ckpt)
    for k, v in EXPORT_SETTINGS.items():
        setattr(model, k, v)
    model.eval()
    ov = None if a.sar_psf is None else {"sar_psf_px": a.sar_psf}
    scene = simulate_scene(7, size=(a.size, a.size), pixel_size_m=10.0, overrides=ov)
    rec = scene_to_record(scene)
    rec.update(ev.trace_geometry(scene))
    rec = relit_view(add_illumination_fits(rec))
    ps = rec["pixel_size_m"]
    frame = fm.fault_frame(rec["optical_pre"].shape, ps, float(rec["strike_deg"]), rec["trace_segments"])
    truth = fm.fault_parallel(rec["truth_enu"][:2] / ps, frame)
    dist = rec["distance_to_rupture_m"]
    sel = (dist >= 50) & (dist <= 1000)
    sel[:16] = sel[-16:] = False
    sel[:, :16] = sel[:, -16:] = False

    def slope(en_px: np.ndarray) -> str:
        est = fm.fault_parallel(en_px, frame)
        t, e = truth[sel], est[sel]
        return f"slope {np.sum(t * e) / np.sum(t * t):.3f}, median |error| {np.median(np.abs(e - t)):.3f} px"

    channels = [n for n in model.channels if n != "fault_side"]
    model.set_channels(channels)
    print(f"simulator SAR psf {scene.params['sar']['psf_sigma_px']} px; pixels 50-1000 m from the trace")
    for combo in a.combos.split(","):
        arrays = arrays_for(rec, COMBOS[combo])
        x = build_features(channels, arrays, stats=compute_stats(arrays), pixel_size_m=ps,
                           wavelength_m=rec["wavelength_m"], phase_sign=int(rec["phase_sign"]))
        x = torch.from_numpy(x[None]).float()
        with torch.no_grad():
            enu = model(x)[0][0].numpy()
            print(f"[{combo}]: {slope(enu[:2] / ps)}")
            if a.candidates and combo == "all":
                m = model.measure(x)
                for p, name in (("o", "optical"), ("s", "SAR")):
                    c = m[f"cand_{p}"][0].numpy()
                    for k in range(c.shape[0]):
                        print(f"  {name} candidate {k}: {slope(np.stack([c[k, 0], -c[k, 1]]))}")
                    soft = fu.soft_select(list(m[f"cand_{p}"].unbind(1)), list(m[f"ldet_{p}"].split(1, 1)),
                                          list(m[f"lres_{p}"].split(1, 1)))[0].numpy()
                    print(f"  {name} residual-weighted mix: {slope(np.stack([soft[0], -soft[1]]))}")


if __name__ == "__main__":
    main()
