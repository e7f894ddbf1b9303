"""Joint unwrapping: the input wrapped phase + 2*pi*k, with the integer k taken from the fused LOS estimate.

Scheme (all vectorised numpy/scipy, no external unwrapper):

1. ``phi_model`` = the fused LOS estimate as phase (same convention as the input phase);
   residual ``r = wrap(phi - phi_model)``: smooth where the model is right, including across a rupture
   where the model has the step.
2. Pixel graph (4-neighbour edges) restricted to *reliable* pixels (coherence >= ``coh_min``) and to edges
   whose residual step ``|wrap(dr)|`` is below ``edge_max`` (so a residual jump - e.g. where the model's step
   is blurred across a rupture - cuts the graph instead of being unwrapped through). Edge cost = residual step
   + (1 - coherence).
3. The residual is integrated (path following) over the minimum-cost spanning forest
   (``scipy.sparse.csgraph.minimum_spanning_tree`` + ``breadth_first_order``, pointer-jumping integration).
4. Each connected region gets the integer cycle offset that puts the median of ``phi_unw - phi_model`` in
   (-pi, pi]: a region-level model bias below lambda/4 in LOS suffices, whatever the step across the rupture.
5. Pixels not reliable, or in regions smaller than ``min_region``, are masked (NaN), never guessed.

``k`` is an integer array and the output is ``phi + 2*pi*k``: congruent with the input by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from .conventions import TWO_PI, wrap


@dataclass
class UnwrapParams:
    coh_min: float = 0.3
    edge_max: float = 0.5 * np.pi
    min_region: int = 25
    pseudo_window: int = 5


def pseudo_coherence(phase: np.ndarray, window: int = 5) -> np.ndarray:
    """Coherence proxy from the phase alone (0..1): consistency of the local phase gradient.

    ``sqrt(|mean exp(i dphi/dx)| * |mean exp(i dphi/dy)|)`` over ``window`` x ``window``: about 1 for clean
    fringes of any density below one cycle per 2 pixels, about ``1/window`` for noise. NaN where phase is NaN.
    """
    p = np.asarray(phase, np.float64)
    ok = np.isfinite(p)
    z = np.where(ok, np.exp(1j * np.where(ok, p, 0.0)), 0.0)

    def grad_consistency(a: np.ndarray, b: np.ndarray, va: np.ndarray, vb: np.ndarray, axis: int) -> np.ndarray:
        g = a * np.conj(b)
        g = np.where(va & vb, g / np.maximum(np.abs(g), 1e-30), 0.0)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, 1)
        g = np.pad(g, pad)
        n = np.pad((va & vb).astype(np.float64), pad)
        num = ndimage.uniform_filter(g.real, window) + 1j * ndimage.uniform_filter(g.imag, window)
        den = ndimage.uniform_filter(n, window)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, np.abs(num) / np.maximum(den, 1e-12), 0.0)

    qx = grad_consistency(z[:, 1:], z[:, :-1], ok[:, 1:], ok[:, :-1], 1)
    qy = grad_consistency(z[1:, :], z[:-1, :], ok[1:, :], ok[:-1, :], 0)
    q = np.sqrt(np.clip(qx, 0, 1) * np.clip(qy, 0, 1))
    q[~ok] = np.nan
    return q.astype(np.float32)


def _integrate_forest(r: np.ndarray, edges_i: np.ndarray, edges_j: np.ndarray, cost: np.ndarray,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the wrapped residual over the minimum spanning forest of the given edges.

    Returns (cycles c with R = r + 2*pi*c, component labels; -1 for nodes without any edge).
    """
    g = sparse.coo_matrix((cost, (edges_i, edges_j)), shape=(n, n)).tocsr()
    tree = csgraph.minimum_spanning_tree(g)
    tree = tree + tree.T
    ncomp, labels = csgraph.connected_components(tree, directed=False)
    # one root per component, joined to a virtual node n so that a single BFS roots the whole forest
    _, roots = np.unique(labels, return_index=True)
    t = tree.tocoo()
    rows = np.concatenate([t.row, np.full(roots.size, n), roots])
    cols = np.concatenate([t.col, roots, np.full(roots.size, n)])
    data = np.concatenate([t.data, np.ones(2 * roots.size)])
    big = sparse.csr_matrix((data, (rows, cols)), shape=(n + 1, n + 1))
    _, pred = csgraph.breadth_first_order(big, n, directed=False, return_predecessors=True)
    pred = pred[:n].astype(np.int64)
    parent = np.where((pred < 0) | (pred == n), np.arange(n), pred)
    d = r - r[parent]
    jump = np.rint((wrap(d) - d) / TWO_PI).astype(np.int64)  # integer cycles between node and its parent
    jump[parent == np.arange(n)] = 0
    # pointer jumping: acc[i] = cycles from i up to p[i]
    acc, p = jump, parent
    for _ in range(64):
        pp = p[p]
        if np.array_equal(pp, p):
            break
        acc = acc + acc[p]
        p = pp
    return acc, labels


def joint_unwrap(phase: np.ndarray, phase_model: np.ndarray, coherence: np.ndarray | None = None,
                 params: UnwrapParams | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Unwrap ``phase`` (rad, wrapped) with the model phase ``phase_model`` (rad, same convention, unwrapped).

    Returns ``(unwrapped float32 with NaN where masked, k int32 (0 where masked), info)``; on valid pixels
    ``unwrapped == phase + 2*pi*k`` exactly (computed in float64).
    """
    prm = params or UnwrapParams()
    phi = np.asarray(phase, np.float64)
    mod = np.asarray(phase_model, np.float64)
    h, w = phi.shape
    valid = np.isfinite(phi) & np.isfinite(mod)
    q = np.asarray(coherence, np.float64) if coherence is not None else pseudo_coherence(phi, prm.pseudo_window)
    q = np.where(np.isfinite(q), q, 0.0)
    reliable = valid & (q >= prm.coh_min)
    diff = np.where(valid, phi - mod, 0.0)
    r = wrap(diff)
    n0 = np.rint((diff - r) / TWO_PI).astype(np.int64)  # phi - phi_model = r + 2*pi*n0

    idx = np.arange(h * w).reshape(h, w)
    ei, ej, ec = [], [], []
    for a, b in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
                 ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):
        dr = np.abs(wrap(r[b] - r[a]))
        ok = reliable[a] & reliable[b] & (dr < prm.edge_max)
        ei.append(idx[a][ok])
        ej.append(idx[b][ok])
        ec.append(1e-3 + dr[ok] / np.pi + (1.0 - np.minimum(q[a][ok], q[b][ok])))
    ei_a, ej_a, ec_a = np.concatenate(ei), np.concatenate(ej), np.concatenate(ec)
    rf = r.ravel()
    cycles, labels = _integrate_forest(rf, ei_a, ej_a, ec_a, h * w)
    # region sizes and offsets; only reliable pixels count
    labels = np.where(reliable.ravel(), labels, -1)
    lab_ok = labels >= 0
    nlab = int(labels.max()) + 1 if lab_ok.any() else 0
    sizes = np.bincount(labels[lab_ok], minlength=nlab)
    keep = lab_ok.copy()
    keep[lab_ok] = sizes[labels[lab_ok]] >= prm.min_region
    R = rf + TWO_PI * cycles
    m = np.zeros(nlab, np.int64)
    big = np.nonzero(sizes >= prm.min_region)[0]
    if big.size:
        med = ndimage.median(R[keep], labels[keep], big)
        m[big] = -np.rint(np.asarray(med) / TWO_PI).astype(np.int64)
    k = np.zeros(h * w, np.int64)
    k[keep] = cycles[keep] + m[labels[keep]] - n0.ravel()[keep]
    k = k.reshape(h, w)
    keep2 = keep.reshape(h, w)
    unw = np.where(keep2, phi + TWO_PI * k, np.nan).astype(np.float32)
    info = {"valid_pixels": int(valid.sum()), "reliable_pixels": int(reliable.sum()),
            "unwrapped_pixels": int(keep2.sum()), "regions": int(big.size),
            "coherence_source": "input" if coherence is not None else "pseudo (phase-gradient consistency)"}
    return unw, np.where(keep2, k, 0).astype(np.int32), info
