"""Draw the plugin icon (icon.png, 64x64): interferogram fringes cut by a fault, with slip arrows."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    y, x = np.mgrid[-1:1:256j, -1:1:256j]
    # Strike-slip butterfly pattern: fringes of a screw dislocation across a vertical fault (x = 0.1 y).
    d = x - 0.1 * y
    los = np.arctan2(y, d * 4.0) / np.pi * 2.5 + 2.0 * np.sign(d) * np.exp(-np.abs(d) * 2)
    phase = np.mod(los * 2 * np.pi, 2 * np.pi)
    r = np.hypot(x, y)
    img = plt.get_cmap("hsv")(phase / (2 * np.pi))
    img[..., 3] = np.where(r <= 0.97, 1.0, 0.0)
    fig = plt.figure(figsize=(1, 1), dpi=64)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(img, extent=(-1, 1, -1, 1), interpolation="bilinear")
    ax.plot([-0.1, 0.1], [-1, 1], color="black", lw=3)
    ax.annotate("", xy=(-0.25, 0.75), xytext=(-0.25, 0.05), arrowprops=dict(arrowstyle="-|>", color="white", lw=2.5))
    ax.annotate("", xy=(0.3, -0.75), xytext=(0.3, -0.05), arrowprops=dict(arrowstyle="-|>", color="white", lw=2.5))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.axis("off")
    fig.savefig(ROOT / "icon.png", transparent=True)


if __name__ == "__main__":
    main()
