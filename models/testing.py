"""A tiny ONNX stand-in for the fusion network, for tests and benchmarks of tiling, IO and speed.

Same I/O names and metadata layout as the shipped model (``features`` -> ``displacement_enu_m``, ``sigma_enu_m``);
a few convolutions with fixed weights, so outputs depend on a neighbourhood (a real receptive field for seam
tests). Needs the ``onnx`` package (development only); the plugin never imports this module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DEFAULT_CHANNELS = [
    "optical_pre", "optical_post", "sar_pre_db", "sar_post_db", "phase_cos", "phase_sin", "coherence",
    "dem_slope_east", "dem_slope_north", "los_east", "los_north", "los_up", "fringe_px", "pixel_size_m",
    "mask_optical", "mask_sar", "mask_insar", "mask_dem",
]


def make_tiny_model(path: str | Path, channels: list[str] | None = None, kernel: int = 5, layers: int = 2,
                    hidden: int = 8, seed: int = 0, version: str = "test-tiny", rupture: bool = False,
                    receptive_field_px: int | None = None, uninformative: dict[str, str] | None = None) -> Path:
    """Write a small conv net ONNX with QuakeFusion metadata to ``path``; returns the path.

    ``rupture``: also a ``rupture_probability`` output (B,1,H,W, sigmoid, 0..1) listed in the metadata, as the next
    model has; ``receptive_field_px`` is recorded in the metadata when given, ``uninformative`` (output key -> why)
    as ``uninformative_outputs`` (outputs the backend does not write: the export marks a head that has not learnt)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    chans = channels or DEFAULT_CHANNELS
    c = len(chans)
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev, cin = "features", c
    pad = kernel // 2
    for i in range(layers):
        cout = hidden
        w = (rng.standard_normal((cout, cin, kernel, kernel)) / np.sqrt(cin * kernel * kernel)).astype(np.float32)
        b = np.zeros(cout, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[pad] * 4))
        nodes.append(helper.make_node("Tanh", [f"c{i}"], [f"a{i}"]))
        prev, cin = f"a{i}", cout
    wd = (0.05 * rng.standard_normal((3, cin, 1, 1))).astype(np.float32)
    ws = (0.05 * rng.standard_normal((3, cin, 1, 1))).astype(np.float32)
    inits += [numpy_helper.from_array(wd, "wd"), numpy_helper.from_array(ws, "ws"),
              numpy_helper.from_array(np.full((1, 3, 1, 1), 0.01, np.float32), "s0")]
    nodes.append(helper.make_node("Conv", [prev, "wd"], ["displacement_enu_m"]))
    nodes.append(helper.make_node("Conv", [prev, "ws"], ["sraw"]))
    nodes.append(helper.make_node("Softplus", ["sraw"], ["sp"]))
    nodes.append(helper.make_node("Add", ["sp", "s0"], ["sigma_enu_m"]))
    outputs = [helper.make_tensor_value_info("displacement_enu_m", TensorProto.FLOAT, ["B", 3, "H", "W"]),
               helper.make_tensor_value_info("sigma_enu_m", TensorProto.FLOAT, ["B", 3, "H", "W"])]
    names = {"displacement": "displacement_enu_m", "sigma": "sigma_enu_m"}
    if rupture:
        wr = (0.5 * rng.standard_normal((1, cin, 1, 1))).astype(np.float32)
        inits.append(numpy_helper.from_array(wr, "wr"))
        nodes.append(helper.make_node("Conv", [prev, "wr"], ["rraw"]))
        nodes.append(helper.make_node("Sigmoid", ["rraw"], ["rupture_probability"]))
        outputs.append(helper.make_tensor_value_info("rupture_probability", TensorProto.FLOAT, ["B", 1, "H", "W"]))
        names["rupture_probability"] = "rupture_probability"
    graph = helper.make_graph(
        nodes, "tiny_quakefusion",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["B", c, "H", "W"])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    meta = {"model_version": version, "input_name": "features", "outputs": names,
            "channels": [{"name": n, "units": "-", "normalisation": "see backend/features.py"} for n in chans],
            "pixel_size_range_m": [5.0, 200.0], "tile_multiple": 16, "wavelength_m_trained": [0.0555, 0.2384]}
    if receptive_field_px is not None:
        meta["receptive_field_px"] = int(receptive_field_px)
    if uninformative:
        meta["uninformative_outputs"] = dict(uninformative)
    helper.set_model_props(model, {"quakefusion": json.dumps(meta)})
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_scene_inputs(scene, folder: Path) -> dict[str, Path]:  # noqa: ANN001 (models.scene.Scene)
    """Write a simulated scene's inputs (optical/SAR pairs, phase, coherence, DEM, incidence, heading) as
    single-band float32 GeoTIFFs on the scene's grid; returns input name -> path."""
    import rasterio
    from affine import Affine

    from backend.conventions import los_to_angles

    folder.mkdir(parents=True, exist_ok=True)
    h, w = scene.dem.shape
    prof = dict(driver="GTiff", width=w, height=h, count=1, dtype="float32", crs=f"EPSG:{scene.crs}",
                transform=Affine(*scene.transform), nodata=float("nan"))
    inc, hdg = los_to_angles(scene.los_unit_vector)
    arrays = {"optical_pre": scene.optical_pre, "optical_post": scene.optical_post, "sar_pre": scene.sar_pre,
              "sar_post": scene.sar_post, "phase": scene.wrapped_phase, "coherence": scene.coherence,
              "dem": scene.dem, "incidence": inc, "heading": hdg}
    out = {}
    for key, a in arrays.items():
        out[key] = folder / f"{key}.tif"
        with rasterio.open(out[key], "w", **prof) as ds:
            ds.write(np.asarray(a, np.float32), 1)
    return out


def scene_estimate_inputs(scene, folder: Path) -> dict:  # noqa: ANN001 (models.scene.Scene)
    """``write_scene_inputs`` + the matching ``EstimateConfig`` keyword arguments (every modality, incidence and
    heading rasters, wavelength, phase sign): ``EstimateConfig(out_dir=..., **scene_estimate_inputs(s, d))``."""
    from backend.config import InputRaster

    p = write_scene_inputs(scene, folder)
    kw = {k: InputRaster(v) for k, v in p.items() if k not in ("incidence", "heading")}
    return kw | {"incidence_deg": InputRaster(p["incidence"]), "heading_deg": InputRaster(p["heading"]),
                 "wavelength_m": scene.wavelength_m, "phase_sign": scene.phase_sign}


def write_truth_run(scene, folder: Path, noise_m: float = 0.0, seed: int = 0, probability: bool = True,  # noqa: ANN001
                    prob_blur_px: float = 1.5) -> Path:
    """A run folder made of a simulated scene's TRUTH, for testing the geologist's tools on known answers:
    ``displacement.tif`` (truth E/N/U + white noise of ``noise_m``), ``displacement_sigma.tif`` (``noise_m``, or
    1 mm without noise), ``rupture_probability.tif`` (the truth's rupture mask blurred by ``prob_blur_px`` and
    scaled to a peak of 1; only with ``probability``) and a ``run.json`` like the pipeline's."""
    import json

    import rasterio
    from affine import Affine
    from scipy import ndimage

    folder.mkdir(parents=True, exist_ok=True)
    truth = np.asarray(scene.truth_enu, np.float32)
    h, w = truth.shape[1:]
    rng = np.random.default_rng(seed)
    disp = truth + (rng.normal(0.0, noise_m, truth.shape).astype(np.float32) if noise_m > 0 else 0)
    sig = np.full_like(truth, max(noise_m, 1e-3))
    prof = dict(driver="GTiff", width=w, height=h, dtype="float32", crs=f"EPSG:{scene.crs}",
                transform=Affine(*scene.transform), nodata=float("nan"))
    files = {"displacement.tif": disp, "displacement_sigma.tif": sig}
    if probability:
        p = ndimage.gaussian_filter(np.asarray(scene.rupture_mask, np.float32), prob_blur_px)
        files["rupture_probability.tif"] = (p / max(float(p.max()), 1e-6))[None]
    for name, a in files.items():
        with rasterio.open(folder / name, "w", count=a.shape[0], **prof) as ds:
            ds.write(a.astype(np.float32))
    run = {"software": "QuakeFusion backend (simulated truth for tests)", "created_utc": "2026-01-01T00:00:00Z",
           "inputs": {"truth": {"path": f"models.scene.simulate_scene seed {scene.params.get('seed')}"}},
           "parameters": {"noise_m": noise_m, "tile": 1024, "overlap": 256},
           "grid": {"crs": f"EPSG:{scene.crs}", "width": w, "height": h, "pixel_size_m": scene.pixel_size_m},
           "model": {"path": "truth", "version": "simulated-truth"}, "device": "cpu",
           "event": scene.params.get("event_params", {}),
           "outputs": {"displacement": "displacement.tif", "displacement_sigma": "displacement_sigma.tif"}}
    (folder / "run.json").write_text(json.dumps(run, indent=2, default=str))
    return folder


def copy_run_with_inputs(run_dir: Path, dst: Path, inputs: list[str]) -> Path:
    """A copy of a run folder whose ``run.json`` lists ``inputs`` (names as the pipeline writes them, e.g.
    ``optical_pre``, ``sar_pre``): for testing what the tools say about the modalities a run fused."""
    import json
    import shutil

    shutil.copytree(run_dir, dst)
    rj = json.loads((dst / "run.json").read_text())
    rj["inputs"] = {k: {"name": k, "path": f"/data/{k}.tif", "band": 1} for k in inputs}
    (dst / "run.json").write_text(json.dumps(rj))
    return dst


def true_fault_offsets(scene, x: float, y: float) -> dict:  # noqa: ANN001 (models.scene.Scene)
    """Truth at map point (x, y) on a simulated scene's surface trace: the surface-rupturing patch there and its
    offsets in the convention of backend/offsets.py (parallel = slip cos(rake): + left-lateral; normal =
    -slip sin(rake) cos(dip); vertical = slip sin(rake) sin(dip) for a trace running along the strike), plus
    ``to_patch_end_m``, the distance along strike to the nearest end of that patch (a slip change)."""
    import math

    h, w = scene.dem.shape
    a, _, c, _, e, f = scene.transform
    le, ln = x - (c + w / 2 * a), y - (f + h / 2 * e)
    for p in scene.params["patches"]:
        s = math.radians(p["strike"])
        along = (le - p["east"]) * math.sin(s) + (ln - p["north"]) * math.cos(s)
        if abs(along) <= p["length"] / 2 and p["top_depth"] == 0:
            r, dip = math.radians(p["rake"]), math.radians(p["dip"])
            return {"parallel": p["slip"] * math.cos(r), "normal": -p["slip"] * math.sin(r) * math.cos(dip),
                    "vertical": p["slip"] * math.sin(r) * math.sin(dip), "strike": p["strike"],
                    "to_patch_end_m": p["length"] / 2 - abs(along)}
    return {"parallel": math.nan, "normal": math.nan, "vertical": math.nan, "strike": math.nan,
            "to_patch_end_m": 0.0}


def true_trace_rc(scene, margin_px: float = 2.0) -> list[np.ndarray]:  # noqa: ANN001 (models.scene.Scene)
    """The simulator's surface trace segments as (row, col) polylines (two vertices each, pixel centres at integers)
    of the scene's grid, clipped ``margin_px`` inside the raster."""
    from affine import Affine

    from models.evaluate import trace_geometry

    h, w = scene.dem.shape
    t = Affine(*scene.transform[:6])
    x0, y0 = t * (w / 2.0, h / 2.0)
    segs = trace_geometry(scene)["trace_segments"].reshape(-1, 2, 2)  # local (east, north) m, scene centre = 0
    out = []
    for seg in segs + np.array([x0, y0]):
        s = np.linspace(0.0, 1.0, 2001)[:, None]
        x, y = (seg[0] + s * (seg[1] - seg[0])).T
        r, c = (y - t.f) / t.e - 0.5, (x - t.c) / t.a - 0.5
        keep = np.flatnonzero((r > margin_px) & (r < h - 1 - margin_px) & (c > margin_px) & (c < w - 1 - margin_px))
        if keep.size > 1:
            out.append(np.column_stack([r[keep[[0, -1]]], c[keep[[0, -1]]]]))
    return out
