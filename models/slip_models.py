"""Loaders for published finite-fault slip models (SRCMOD FSP / GeoNet CSV) → :class:`models.okada.Patch`.

numpy only. Geographic positions are projected with a local transverse-Mercator-like equirectangular
approximation around a reference point (good to < 0.1 % over ~100 km, enough for a forward model), or
into UTM by :func:`utm_from_lonlat` (Krüger series, WGS84) when a map CRS is wanted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from models.okada import Patch

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DARFIELD_CSV = DATA_DIR / "geonet_darfield2010" / "3366146.csv"
DARFIELD_FSP = DATA_DIR / "geonet_darfield2010" / "3366146.fsp"

_A = 6378137.0
_F = 1 / 298.257223563


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone containing (lon, lat)."""
    zone = int((lon + 180) // 6) + 1
    return (32600 if lat >= 0 else 32700) + zone


def utm_from_lonlat(lon: np.ndarray, lat: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat (deg) → UTM easting/northing (m) in the zone of ``epsg`` (326zz / 327zz); Krüger series."""
    zone = epsg % 100
    south = epsg // 100 == 327
    lon0 = np.deg2rad(-183.0 + 6.0 * zone)
    lon = np.deg2rad(np.asarray(lon, dtype=np.float64))
    lat = np.deg2rad(np.asarray(lat, dtype=np.float64))
    n = _F / (2 - _F)
    A = _A / (1 + n) * (1 + n**2 / 4 + n**4 / 64)
    alpha = [n / 2 - 2 * n**2 / 3 + 5 * n**3 / 16, 13 * n**2 / 48 - 3 * n**3 / 5, 61 * n**3 / 240]
    e = np.sqrt(_F * (2 - _F))
    t = np.sinh(np.arctanh(np.sin(lat)) - e * np.arctanh(e * np.sin(lat)))
    xi_p = np.arctan2(t, np.cos(lon - lon0))
    eta_p = np.arctanh(np.sin(lon - lon0) / np.sqrt(1 + t * t))
    xi = xi_p + sum(alpha[j] * np.sin(2 * (j + 1) * xi_p) * np.cosh(2 * (j + 1) * eta_p) for j in range(3))
    eta = eta_p + sum(alpha[j] * np.cos(2 * (j + 1) * xi_p) * np.sinh(2 * (j + 1) * eta_p) for j in range(3))
    k0 = 0.9996
    east = 500000.0 + k0 * A * eta
    north = k0 * A * xi + (10000000.0 if south else 0.0)
    return east, north


def load_geonet_csv(path: str | Path = DARFIELD_CSV) -> list[dict]:
    """Rows of a GeoNet/SRCMOD CSV: lon, lat (deg), depth (m, top-centre of the patch), slip (m), strike, dip,
    rake (deg), length, width (m)."""
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        idx = {h.split("(")[0].strip(): i for i, h in enumerate(header)}
        for r in reader:
            if not r or not r[0].strip():
                continue
            rows.append(
                {
                    "segment": int(r[idx["segment"]]),
                    "lon": float(r[idx["lon"]]),
                    "lat": float(r[idx["lat"]]),
                    "depth_m": float(r[idx["depth"]]),
                    "slip_m": float(r[idx["slip"]]),
                    "strike": float(r[idx["strike"]]),
                    "dip": float(r[idx["dip"]]),
                    "rake": float(r[idx["rake"]]),
                    "length_m": float(r[idx["length"]]),
                    "width_m": float(r[idx["width"]]),
                }
            )
    return rows


def load_fsp(path: str | Path = DARFIELD_FSP) -> list[dict]:
    """Subfault rows of an SRCMOD ``.fsp`` file (LAT LON X Y Z SLIP STRIKE DIP RAKE; Z in km = top-centre depth).

    Patch length/width come from each segment header's ``Dx``/``Dz`` (km)."""
    rows: list[dict] = []
    dx = dz = None
    seg = 0
    with open(path) as f:
        for line in f:
            s = line.strip()
            if s.startswith("%"):
                if "SEGMENT #" in s:
                    seg += 1
                if "Dx" in s and "Dz" in s and "km" in s:
                    parts = s.replace("=", " ").split()
                    try:
                        dx = float(parts[parts.index("Dx") + 1])
                        dz = float(parts[parts.index("Dz") + 1])
                    except (ValueError, IndexError):
                        pass
                continue
            vals = s.split()
            if len(vals) < 9:
                continue
            try:
                lat, lon, _x, _y, z, slip, strike, dip, rake = (float(v) for v in vals[:9])
            except ValueError:
                continue
            rows.append(
                {
                    "segment": seg, "lon": lon, "lat": lat, "depth_m": z * 1000.0, "slip_m": slip,
                    "strike": strike, "dip": dip, "rake": rake,
                    "length_m": (dx or 1.0) * 1000.0, "width_m": (dz or 1.0) * 1000.0,
                }
            )
    return rows


def rows_to_patches(rows: list[dict], epsg: int | None = None) -> tuple[list[Patch], int]:
    """Slip-model rows → Patch list in UTM metres (zone of the model's centroid unless ``epsg`` is given)."""
    lon = np.array([r["lon"] for r in rows])
    lat = np.array([r["lat"] for r in rows])
    if epsg is None:
        epsg = utm_epsg(float(lon.mean()), float(lat.mean()))
    e, n = utm_from_lonlat(lon, lat, epsg)
    patches = [
        Patch(
            east=float(e[i]), north=float(n[i]), top_depth=max(0.0, r["depth_m"]), strike=r["strike"], dip=r["dip"],
            rake=r["rake"], slip=r["slip_m"], length=r["length_m"], width=r["width_m"],
        )
        for i, r in enumerate(rows)
    ]
    return patches, epsg


def load_darfield(epsg: int | None = None) -> tuple[list[Patch], int]:
    """The 2010 Darfield Mw 7.2 model (Beavan et al. 2012, GeoNet) as UTM patches (EPSG:32759 by default)."""
    return rows_to_patches(load_geonet_csv(DARFIELD_CSV), epsg)


def moment_magnitude(patches: list[Patch], mu: float = 3.0e10) -> float:
    """Mw of a patch set (Hanks & Kanamori, M0 in N·m)."""
    m0 = sum(mu * p.slip * p.length * p.width for p in patches)
    return float(2.0 / 3.0 * (np.log10(max(m0, 1.0)) - 9.1))
