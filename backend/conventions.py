"""Sign conventions, units and geometry shared by the simulator, training and inference.

Plain numpy, no Qt, no torch. One place, so that the simulator, the network's input
features and the backend agree on what every number means (see docs/conventions.md).

* Displacement: east, north, up in metres (ENU, local to the output grid).
* ``los_unit_vector``: unit vector from the ground pixel **towards the satellite**, ENU.
* ``los_displacement`` (m): displacement projected on ``los_unit_vector``, positive
  **towards the satellite** (= minus the range increase).
* Wrapped phase (rad) as processors deliver it:
  ``phase = phase_sign * 4*pi/wavelength * range_increase`` (then wrapped to [-pi, pi)).
  ``phase_sign = +1`` is the LiCSAR/COMET convention.
* Heading: azimuth of the flight direction, degrees clockwise from north (Sentinel-1
  ascending about -12 deg, descending about -168 deg). Right-looking SAR.
* Incidence: angle between the line of sight and the vertical at the ground, degrees.
"""

from __future__ import annotations

import numpy as np

SENTINEL1_WAVELENGTH_M = 0.05546576  # C-band, 5.405 GHz
ALOS2_WAVELENGTH_M = 0.22904  # L-band, 1.2575 GHz
NISAR_L_WAVELENGTH_M = 0.23840  # L-band, 1.2575 GHz (NISAR L-SAR centre)

TWO_PI = 2.0 * np.pi


def wrap(phase: np.ndarray) -> np.ndarray:
    """Wrap radians to [-pi, pi)."""
    return (np.asarray(phase) + np.pi) % TWO_PI - np.pi


def los_unit_vector(incidence_deg, heading_deg) -> np.ndarray:
    """Ground-to-satellite unit vector (east, north, up) for a right-looking SAR.

    Broadcasts; returns an array of shape ``(3, *broadcast_shape)``.
    Sentinel-1 ascending (heading -12, incidence 39) gives about (-0.62, -0.13, 0.78):
    the satellite is west of and above the target.
    """
    inc = np.deg2rad(np.asarray(incidence_deg, dtype=np.float64))
    hdg = np.deg2rad(np.asarray(heading_deg, dtype=np.float64))
    inc, hdg = np.broadcast_arrays(inc, hdg)
    east = -np.sin(inc) * np.cos(hdg)
    north = np.sin(inc) * np.sin(hdg)
    up = np.cos(inc)
    return np.stack([east, north, up])


def enu_to_los(east, north, up, los_unit) -> np.ndarray:
    """Project ENU displacement (m) on the ground-to-satellite unit vector: metres towards the satellite."""
    return east * los_unit[0] + north * los_unit[1] + up * los_unit[2]


def los_to_phase(los_displacement_m, wavelength_m: float, phase_sign: int = 1) -> np.ndarray:
    """Unwrapped phase (rad) of a LOS displacement (m, towards the satellite)."""
    range_increase = -np.asarray(los_displacement_m)
    return phase_sign * 4.0 * np.pi / wavelength_m * range_increase


def phase_to_los(phase_rad, wavelength_m: float, phase_sign: int = 1) -> np.ndarray:
    """LOS displacement (m, towards the satellite) of an unwrapped phase (rad)."""
    range_increase = phase_sign * np.asarray(phase_rad) * wavelength_m / (4.0 * np.pi)
    return -range_increase


def los_to_angles(los_unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(incidence, heading) in degrees (float32, rounded to 0.001) of a ground-to-satellite ENU unit vector."""
    e, n, u = (np.asarray(x, np.float64) for x in los_unit)
    inc = np.round(np.degrees(np.arccos(np.clip(u, -1, 1))), 3).astype(np.float32)
    hdg = np.round(np.degrees(np.arctan2(n, -e)), 3).astype(np.float32)
    return inc, hdg
