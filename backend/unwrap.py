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
   Edges where the model itself steps by more than pi per pixel (an aliased step, e.g. at a rupture, that the
   data cannot confirm) are cut too. Where the model's 1-sigma exceeds ``trust_sigma`` the classical
   ``wrap(dphi)`` is used instead, so a poor model cannot do worse than path following.
4. The largest region of each group of touching regions gets the integer offset that puts the median of
   ``phi_unw - phi_model`` in (-pi, pi] (a region-level model bias below lambda/4 in LOS suffices); the others are
   linked to it through a spanning tree of region pairs, each offset from the median of
   ``(phi_unw - phi_model)`` differences of pixel pairs 4-8 px apart across their common boundary - local, so
   atmosphere or model bias drifting across the scene does not matter; the step across the rupture is the model's.
5. Pixels not reliable, or in regions smaller than ``min_region``, are masked (NaN), never guessed.

``k`` is an integer array and the output is ``phi + 2*pi*k``: congruent with the input by construction.
"""

from __future__ import annotations

from collections.abc import Callable
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
    trust_sigma: float = np.pi  # model phase 1-sigma (rad) above which its gradient is not used
    model_step_max: float = np.pi  # rad per pixel
    offset_sigma_max: float = 2 * np.pi  # a region's median model 1-sigma (rad) above which it sets no absolute offset
    link_probe: tuple[int, ...] = (4, 6, 8)  # px between compared pixels


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


def _integrate_forest(jump_e: np.ndarray, edges_i: np.ndarray, edges_j: np.ndarray, cost: np.ndarray,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer cycles over the minimum spanning forest of the given edges.

    ``jump_e[e]`` = k[j] - k[i] along edge e = (i, j). Returns (k relative to each tree's root, component
    labels). Nodes without edges are their own component with k = 0.
    """
    m = edges_i.size
    if m == 0:
        return np.zeros(n, np.int64), np.arange(n)
    # store edge index + 1 as data so that the MST tells which edges it kept (costs must be unique-ish: add a
    # tiny index-dependent term so that ties cannot make the lookup ambiguous)
    g = sparse.coo_matrix((cost + np.arange(m) * 1e-12, (edges_i, edges_j)), shape=(n, n)).tocsr()
    tree = csgraph.minimum_spanning_tree(g).tocoo()
    lookup = sparse.coo_matrix((np.tile(np.arange(m) + 1.0, 2), (np.concatenate([edges_i, edges_j]),
                                np.concatenate([edges_j, edges_i]))), shape=(n, n)).tocsr()
    eidx = np.asarray(lookup[tree.row, tree.col]).ravel().astype(np.int64) - 1
    ti, tj = edges_i[eidx], edges_j[eidx]
    tjump = jump_e[eidx]
    und = sparse.coo_matrix((np.ones(2 * ti.size), (np.concatenate([ti, tj]), np.concatenate([tj, ti]))),
                            shape=(n, n)).tocsr()
    ncomp, labels = csgraph.connected_components(und, directed=False)
    _, roots = np.unique(labels, return_index=True)
    rows = np.concatenate([ti, tj, np.full(roots.size, n), roots])
    cols = np.concatenate([tj, ti, roots, np.full(roots.size, n)])
    big = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n + 1, n + 1))
    _, pred = csgraph.breadth_first_order(big, n, directed=False, return_predecessors=True)
    pred = pred[:n].astype(np.int64)
    ar = np.arange(n)
    parent = np.where((pred < 0) | (pred == n), ar, pred)
    # jump from parent to node: +tjump if the tree edge is (parent -> node) = (i, j), -tjump if (j, i)
    jump = np.zeros(n, np.int64)
    # vectorised: edges (i, j) where parent[j] == i give jump[j] = tjump; where parent[i] == j give jump[i] = -tjump
    fwd = parent[tj] == ti
    jump[tj[fwd]] = tjump[fwd]
    bwd = (parent[ti] == tj) & ~fwd
    jump[ti[bwd]] = -tjump[bwd]
    acc, p = jump, parent
    for _ in range(64):
        pp = p[p]
        if np.array_equal(pp, p):
            break
        acc = acc + acc[p]
        p = pp
    return acc, labels


def _boundary_pairs(lab: np.ndarray, dev: np.ndarray, probe: tuple[int, ...], dev_plain: np.ndarray | None,
                    model_ok: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(region A, region B > A, dev_B - dev_A) for pixel pairs ``probe`` px apart (rows and columns) that lie in two
    different regions; None when there are none."""
    h, w = lab.shape
    pa, pb, dv = [], [], []
    for d in probe:
        if d >= w and d >= h:
            continue
        for sa, sb in (((slice(None), slice(None, -d)), (slice(None), slice(d, None))),
                       ((slice(None, -d), slice(None)), (slice(d, None), slice(None)))):
            la, lb = lab[sa], lab[sb]
            if la.size == 0:
                continue
            sel = (la >= 0) & (lb >= 0) & (la != lb)
            A, B = la[sel], lb[sel]
            diff = dev[sb][sel] - dev[sa][sel]
            if model_ok is not None and dev_plain is not None:
                both = model_ok[A] & model_ok[B]
                diff = np.where(both, diff, dev_plain[sb][sel] - dev_plain[sa][sel])
            pa.append(A)
            pb.append(B)
            dv.append(diff)
    if not pa:
        return None
    A, B, V = np.concatenate(pa), np.concatenate(pb), np.concatenate(dv)
    if A.size == 0:
        return None
    swap = A > B
    return np.where(swap, B, A), np.where(swap, A, B), np.where(swap, -V, V)


def _region_tree(A: np.ndarray, B: np.ndarray, V: np.ndarray, nlab: int) -> dict[int, list[tuple[int, int]]]:
    """Adjacency of the minimum spanning tree of region pairs with >= 10 boundary pairs (weight 1/count); each edge
    carries the cycle step d with m_b = m_a - d (the median of dev_B - dev_A, in cycles)."""
    key = A.astype(np.int64) * nlab + B
    ukey, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    med = np.asarray(ndimage.median(V, inv, np.arange(ukey.size)), np.float64)
    strong = cnt >= 10  # enough boundary pairs
    ua, ub = ukey[strong] // nlab, ukey[strong] % nlab
    if ua.size == 0:
        return {}
    dcyc = np.rint(med[strong] / TWO_PI).astype(np.int64)  # (dev_B - dev_A) near the boundary, in cycles
    g = sparse.coo_matrix((1.0 / cnt[strong], (ua, ub)), shape=(nlab, nlab)).tocsr()
    tree = csgraph.minimum_spanning_tree(g).tocoo()
    dmap = dict(zip(zip(ua.tolist(), ub.tolist()), dcyc.tolist()))
    adj: dict[int, list[tuple[int, int]]] = {}
    for a, b in zip(tree.row.tolist(), tree.col.tolist()):
        a, b = (a, b) if a < b else (b, a)
        d = dmap[(a, b)]
        adj.setdefault(a, []).append((b, d))  # m_b = m_a - d
        adj.setdefault(b, []).append((a, -d))
    return adj


def _link_regions(lab: np.ndarray, dev: np.ndarray, sizes: np.ndarray, m: np.ndarray,
                  probe: tuple[int, ...], dev_plain: np.ndarray | None = None,
                  model_ok: np.ndarray | None = None) -> int:
    """Re-derive region offsets ``m`` (in place) through a spanning tree of touching regions. Returns #linked.

    ``dev`` = phi_unw - phi_model (up to the region offsets). With ``model_ok`` (per label), a pair of regions
    where either side's offset does not come from the model is compared on ``dev_plain`` (= phi_unw: plain
    continuity of the unwrapped phase), so an untrusted model cannot shift regions against each other; roots are
    chosen among model-anchored regions first.
    """
    pairs = _boundary_pairs(lab, dev, probe, dev_plain, model_ok)
    if pairs is None:
        return 0
    adj = _region_tree(*pairs, m.size)
    seen: set[int] = set()
    linked = 0
    anchored = model_ok if model_ok is not None else np.ones(m.size, bool)
    for root in sorted(adj, key=lambda x: (not anchored[x], -sizes[x])):
        if root in seen:
            continue
        seen.add(root)
        stack = [root]
        while stack:
            a = stack.pop()
            for b, d in adj[a]:
                if b not in seen:
                    seen.add(b)
                    m[b] = m[a] - d
                    linked += 1
                    stack.append(b)
    return linked


def joint_unwrap(phase: np.ndarray, phase_model: np.ndarray, coherence: np.ndarray | None = None,
                 params: UnwrapParams | None = None,
                 model_sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Unwrap ``phase`` (rad, wrapped) with the model phase ``phase_model`` (rad, same convention, unwrapped).

    ``model_sigma``: 1-sigma of ``phase_model`` (rad); where it exceeds ``params.trust_sigma`` the model is not
    trusted for the phase gradient there and the edge falls back to the classical ``wrap(dphi)`` (so a poor
    model cannot make the unwrapping worse than path following on the phase). None = trusted everywhere.

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
    if model_sigma is None:
        trusted = np.ones((h, w), bool)
    else:
        sg = np.asarray(model_sigma, np.float64)
        trusted = np.isfinite(sg) & (sg <= prm.trust_sigma)
    phi0 = np.where(valid, phi, 0.0)
    mod0 = np.where(valid, mod, 0.0)

    idx = np.arange(h * w).reshape(h, w)
    ei, ej, ec, ejump = [], [], [], []
    for a, b in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
                 ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):
        dphi = phi0[b] - phi0[a]
        dmod = mod0[b] - mod0[a]
        dres = wrap(dphi - dmod)  # residual step
        use_model = trusted[a] & trusted[b]
        est = np.where(use_model, dmod + dres, wrap(dphi))  # estimated true phase step along the edge
        step = np.where(use_model, np.abs(dres), np.abs(wrap(dphi)))
        # cut where the residual jumps, and where the model itself steps by more than model_step_max (an
        # aliased step the data cannot confirm, e.g. at a rupture): such regions are linked afterwards
        # (classical edges are cut the same way on |wrap(dphi)|: quality-guided, no guessing through steep steps)
        ok = reliable[a] & reliable[b] & (step < prm.edge_max) & (~use_model | (np.abs(dmod) < prm.model_step_max))
        ei.append(idx[a][ok])
        ej.append(idx[b][ok])
        ec.append(1e-3 + step[ok] / np.pi + (1.0 - np.minimum(q[a][ok], q[b][ok])))
        ejump.append(np.rint((est[ok] - dphi[ok]) / TWO_PI).astype(np.int64))
    cycles, labels = _integrate_forest(np.concatenate(ejump), np.concatenate(ei), np.concatenate(ej),
                                       np.concatenate(ec), h * w)
    labels = np.where(reliable.ravel(), labels, -1)
    lab_ok = labels >= 0
    nlab = int(labels.max()) + 1 if lab_ok.any() else 0
    sizes = np.bincount(labels[lab_ok], minlength=nlab)
    keep = lab_ok.copy()
    keep[lab_ok] = sizes[labels[lab_ok]] >= prm.min_region
    # region offsets: the largest region of each linked group puts the median of (phi_unw - phi_model) in
    # (-pi, pi]; regions that touch it are linked through the local continuity of (phi_unw - phi_model) a few
    # pixels either side of their common boundary (robust to atmosphere / model bias drifting across the scene)
    dev = (phi0 - mod0).ravel() + TWO_PI * cycles
    m = np.zeros(nlab, np.int64)
    big = np.nonzero(sizes >= prm.min_region)[0]
    n_linked = 0
    n_model_offset = 0
    if big.size:
        med = ndimage.median(dev[keep], labels[keep], big)
        m[big] = -np.rint(np.asarray(med) / TWO_PI).astype(np.int64)
        if model_sigma is not None:
            # a region where the model is far too uncertain (median sigma > offset_sigma_max) takes no absolute
            # offset from it (a biased, untrained model would shift it by many cycles): median k = 0 there instead
            sgf = np.where(np.isfinite(sg), sg, np.inf).ravel()
            msig = np.asarray(ndimage.median(sgf[keep], labels[keep], big), np.float64)
            loose = big[~(msig <= prm.offset_sigma_max)]
            if loose.size:
                mc = np.asarray(ndimage.median(cycles[keep].astype(np.float64), labels[keep], loose), np.float64)
                m[loose] = -np.rint(mc).astype(np.int64)
            n_model_offset = int(sizes[big[msig <= prm.offset_sigma_max]].sum())
            model_ok = np.zeros(nlab, bool)
            model_ok[big[msig <= prm.offset_sigma_max]] = True
        else:
            n_model_offset = int(sizes[big].sum())
            model_ok = np.ones(nlab, bool)
        lab_k = np.where(keep, labels, -1).reshape(h, w)
        dev_plain = (phi0.ravel() + TWO_PI * cycles).reshape(h, w)
        n_linked = _link_regions(lab_k, dev.reshape(h, w), sizes, m, prm.link_probe, dev_plain, model_ok)
    k = np.zeros(h * w, np.int64)
    k[keep] = cycles[keep] + m[labels[keep]]
    k = k.reshape(h, w)
    keep2 = keep.reshape(h, w)
    unw = np.where(keep2, phi + TWO_PI * k, np.nan).astype(np.float32)
    info = {"valid_pixels": int(valid.sum()), "reliable_pixels": int(reliable.sum()),
            "unwrapped_pixels": int(keep2.sum()), "regions": int(big.size), "linked_regions": int(n_linked),
            "model_trusted_share": float(trusted[valid].mean()) if valid.any() else 0.0,
            "model_offset_pixels": n_model_offset,
            "coherence_source": "input" if coherence is not None else "pseudo (phase-gradient consistency)"}
    return unw, np.where(keep2, k, 0).astype(np.int32), info


# ----------------------------------------------------------------------------------------- the pipeline stage
STITCH_PX = 8  # blocks overlap their already unwrapped upper and left neighbours by this many pixels


class _Stitcher:
    """Edges of the already unwrapped neighbours (last rows of the block row above, last columns of the block to
    the left); :meth:`shift` moves each connected part of a new block that reaches into that strip by the integer
    number of cycles that makes it agree with the neighbour, so there are no cycle jumps at block edges even where
    the model sets no offset."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.bottom_prev = np.full((STITCH_PX, width), np.nan, np.float32)
        self.bottom_cur = np.full((STITCH_PX, width), np.nan, np.float32)
        self.right_prev: np.ndarray | None = None
        self.shifts = 0

    def start_block(self, r0: int, c0: int) -> None:
        if c0 == 0:
            self.right_prev = None
            if r0 > 0:
                self.bottom_prev = self.bottom_cur
                self.bottom_cur = np.full((STITCH_PX, self.width), np.nan, np.float32)

    def shift(self, unw: np.ndarray, dh: int, dw: int, c0: int, cc0: int, w: int) -> np.ndarray:
        if not (dh or dw):
            return unw
        prev = np.full(unw.shape, np.nan, np.float64)
        if dh:
            prev[:dh, :] = self.bottom_prev[:, cc0:c0 + w]
        if dw and self.right_prev is not None:
            prev[dh:, :dw] = self.right_prev
        lab, nlab = ndimage.label(np.isfinite(unw))
        both = np.isfinite(prev) & (lab > 0)
        if not both.any():
            return unw
        comps = np.unique(lab[both])
        d = np.rint((prev[both] - unw[both]) / TWO_PI)
        shift = np.zeros(nlab + 1)
        shift[comps] = np.rint(np.asarray(ndimage.median(d, lab[both], comps), np.float64))
        self.shifts += int(np.count_nonzero(shift))
        return (unw.astype(np.float64) + TWO_PI * shift[lab]).astype(np.float32)

    def keep_edges(self, unw: np.ndarray, c0: int, h: int, w: int) -> None:
        nb = min(h, STITCH_PX)
        self.bottom_cur[STITCH_PX - nb:, c0:c0 + w] = unw[h - nb:, :]
        self.right_prev = unw[:, max(w - STITCH_PX, 0):] if w >= STITCH_PX else None


def unwrap_grid(height: int, width: int, read: Callable[[int, int, int, int], tuple],
                write: Callable[[int, int, np.ndarray], None], params: UnwrapParams, block: int,
                report: Callable[[int, int], None] | None = None,
                cancel: Callable[[], None] | None = None) -> dict:
    """Unwrap a whole grid block by block (``block`` px a side, stitched, see :class:`_Stitcher`).

    ``read(r0, c0, h, w)`` -> ``(phase, coherence or None, model phase, model 1-sigma phase)`` of a window;
    ``write(r0, c0, unwrapped)`` stores a finished block; ``cancel()`` raises to stop. Returns the run's
    statistics (pixel counts, model-trusted share, stitch shifts, parameters).
    """
    B = max(64, int(block))
    blocks = [(r, c) for r in range(0, height, B) for c in range(0, width, B)]
    tot = {"valid_pixels": 0, "reliable_pixels": 0, "unwrapped_pixels": 0, "regions": 0,
           "model_offset_pixels": 0}  # pixels whose absolute cycle offset came from the model
    trusted_px = 0.0
    info: dict = {}
    st = _Stitcher(width)
    for j, (r0, c0) in enumerate(blocks):
        if cancel is not None:
            cancel()
        st.start_block(r0, c0)
        h, w = min(B, height - r0), min(B, width - c0)
        dh, dw = (STITCH_PX if r0 > 0 else 0), (STITCH_PX if c0 > 0 else 0)
        rr0, cc0 = r0 - dh, c0 - dw
        phi, coh, phi_m, sig_m = read(rr0, cc0, h + dh, w + dw)
        unw, _, info = joint_unwrap(phi, phi_m, coh, params, model_sigma=sig_m)
        unw = st.shift(unw, dh, dw, c0, cc0, w)[dh:, dw:]
        trusted_px += info["model_trusted_share"] * info["valid_pixels"]
        for key in tot:
            tot[key] += info[key]
        write(r0, c0, unw)
        st.keep_edges(unw, c0, h, w)
        if report is not None:
            report(j + 1, len(blocks))
    out = {"coherence_source": info.get("coherence_source"), "stitch_shifts": st.shifts, **tot,
           "model_trusted_share": trusted_px / max(tot["valid_pixels"], 1)}
    out.update(block_px=B, coh_min=params.coh_min, edge_max_rad=params.edge_max, min_region=params.min_region,
               trust_sigma_rad=params.trust_sigma)
    return out
