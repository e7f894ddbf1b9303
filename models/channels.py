"""Default channel list of the fusion network (order = the network's input order).

The exported ONNX carries this list (name, units, normalisation) in its metadata; the backend
reads the list from there, not from this module. Builders live in ``backend/features.py``.
"""

from __future__ import annotations

from backend.features import CHANNEL_DOC

CHANNELS: list[str] = [
    "optical_pre", "optical_post",
    "sar_pre_db", "sar_post_db",
    "phase_cos", "phase_sin", "coherence",
    "dem_slope_east", "dem_slope_north",
    "los_east", "los_north", "los_up",
    "fringe_px", "pixel_size_m",
    "mask_optical", "mask_sar", "mask_insar", "mask_dem",
    "fault_side",
]
# Channels a model may lack (added after training began; they carry no weights): a checkpoint without them loads,
# and the export gives it the current list. ``fault_side`` (0.7.0): a known rupture trace, 0 everywhere without one.
OPTIONAL_CHANNELS: tuple[str, ...] = ("fault_side",)

# Modality groups: which arrays a modality brings (used for modality dropout and evaluation).
MODALITIES: dict[str, tuple[str, ...]] = {
    "optical": ("optical_pre", "optical_post"),
    "sar": ("sar_pre", "sar_post"),
    "insar": ("wrapped_phase", "coherence"),
    "dem": ("dem",),
}


def channel_specs(names: list[str] | None = None) -> list[dict[str, str]]:
    """Metadata entries ``{"name", "units", "normalisation"}`` for ``names`` (default: CHANNELS)."""
    out = []
    for n in names or CHANNELS:
        units, norm = CHANNEL_DOC[n]
        out.append({"name": n, "units": units, "normalisation": norm})
    return out


def index(name: str, names: list[str] | None = None) -> int:
    return (names or CHANNELS).index(name)
