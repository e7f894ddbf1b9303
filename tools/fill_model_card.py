"""Fill models/MODEL_CARD.md from the template and the held-out metrics (runs/eval*/metrics.json).

    python tools/fill_model_card.py [--finetune "text"] [--no-keep]

Tables are the evaluation's own markdown (models.evaluate.to_markdown); the targets tables are computed here from
the same numbers, so the card cannot drift from the measurements. A set that was not evaluated on this machine (no
``runs/<set>/metrics.json``: ``runs/`` is not in git, and a new machine has none) keeps what the committed card
says: its text is recovered from ``git show HEAD:`` of the card and of the template it was filled from (only when
that split is unambiguous: the template's fixed text between two placeholders must not occur inside a fill).
With ``--no-keep``, or without git, such a set is left as a marked placeholder.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluate import CORR, DIS_FS0, ZERO, model_name, simulator_note  # noqa: E402

SETS = {  # placeholder -> runs/ folder
    "TABLE_RANDOM": "eval", "TABLE_STRONG": "eval_strong", "TABLE_REAL": "eval_real_texture",
    "TABLE_REAL_LARGE": "eval_real_texture_large", "TABLE_REAL_CLOUDMASK": "eval_real_texture_large_cloudmask",
    "TABLE_REAL_CLEAN": "eval_real_pair_clean",
    "TABLE_SAME": "eval_same_image",
    "TABLE_NOMOTION": "eval_no_motion", "TABLE_NOMOTION_REAL": "eval_no_motion_real",
    "TABLE_TRACE_RANDOM": "eval_trace", "TABLE_REAL_TRACE": "eval_real_texture_trace",
    "TABLE_REAL_LARGE_TRACE": "eval_real_texture_large_trace",
    "TABLE_REAL_LARGE_TRACE_OFF3": "eval_real_texture_large_trace_off3",
    "TABLE_REAL_CLOUDMASK_TRACE": "eval_real_texture_large_cloudmask_trace",
    "TABLE_REAL_C_CLOUDMASK": "eval_real_texture_cloudmask",
    "TABLE_REAL_C_CLOUDMASK_TRACE": "eval_real_texture_cloudmask_trace",
    "TABLE_REAL_TRACE_EXTRACTED": "eval_real_texture_trace_extracted",
    "TABLE_NOMOTION_REAL_TRACE": "eval_no_motion_real_trace",
    "TABLE_REAL_LARGE_TRACE_EXTRACTED": "eval_real_texture_large_trace_extracted",
    "TABLE_REAL_CLOUDMASK_TRACE_EXTRACTED": "eval_real_texture_large_cloudmask_trace_extracted",
}
RELIGHT_PAIRS = {"(a) random events": ("eval_norelight", "eval"),
                 "(b) strong events": ("eval_strong_norelight", "eval_strong")}
OPT = model_name("optical")


def _table(md: Path) -> str:
    lines = md.read_text().splitlines()[2:]  # drop the first (set description) line; the card has its own heading
    res = json.loads((md.parent / "metrics.json").read_text()) if (md.parent / "metrics.json").exists() else {}
    if any(c != "optical" for c in (res.get("config") or {}).get("combos", ["optical"])):  # rows with SAR
        lines = [simulator_note(res), ""] + lines
    return "\n".join(lines)


def _load(folder: str) -> dict[str, Any] | None:
    p = ROOT / "runs" / folder / "metrics.json"
    return json.loads(p.read_text()) if p.exists() else None


def _pct(v: float) -> str:
    return f"{v * 100:.0f} %"


def targets(rnd: dict, strong: dict) -> str:
    """Issue #4 targets (model 0.2) from the random and strong simulated sets."""
    def m(res: dict, name: str) -> dict:
        return res["methods"][name]

    rows = ["| target | measured (random events / strong events) | verdict |", "|---|---|---|"]
    # near-rupture E/N vs both baselines (optical-only network = same input as the baselines)
    parts, ok, margins = [], True, []
    for tag, res in (("random", rnd), ("strong", strong)):
        q = m(res, OPT)
        dis, pc = m(res, DIS_FS0), m(res, CORR)
        best = min(dis["epe_px_near"], pc["epe_px_near"])
        best_med = min(dis["epe_px_near_median"], pc["epe_px_near_median"])
        best_s = min(dis["epe_px_strong"], pc["epe_px_strong"])
        red = 1 - q["epe_px_near"] / best
        red_med = 1 - q["epe_px_near_median"] / best_med
        red_s = 1 - q["epe_px_strong"] / best_s
        ok &= red >= 0.3 and red_med >= 0.3 and red_s >= 0.3
        margins += [red, red_med, red_s]
        parts.append(f"{tag}: mean {q['epe_px_near']:.3f} px vs best baseline {best:.3f} (−{red * 100:.0f} %), median "
                     f"{q['epe_px_near_median']:.3f} vs {best_med:.3f} (−{red_med * 100:.0f} %), "
                     f"where \\|d\\| ≥ 0.5 px "
                     f"{q['epe_px_strong']:.3f} vs {best_s:.3f} (−{red_s * 100:.0f} %)")
    verdict = "**missed**" if not ok else (
        "**met**" if min(margins) >= 0.35 else f"**met**, narrowly (smallest margin −{min(margins) * 100:.0f} %)")
    rows.append(f"| near-rupture E/N error ≥ 30 % below both baselines (optical) | {'; '.join(parts)} "
                f"| {verdict} |")
    far = [m(r, OPT)["epe_px_far"] for r in (rnd, strong)]
    rows.append(f"| far-field E/N ≤ 0.1 px with optical | {far[0]:.3f} / {far[1]:.3f} px | "
                f"{'**met**' if max(far) <= 0.1 else '**missed**'} |")
    parts, ok = [], True
    for tag, res in (("random", rnd), ("strong", strong)):
        singles = {c: m(res, model_name(c))["rmse3d_m"] for c in ("optical", "sar", "insar")}
        bc = min(singles, key=singles.get)
        a = m(res, model_name("all"))["rmse3d_m"]
        ok &= a <= 0.5 * singles[bc]
        parts.append(f"{tag}: all {a:.3f} m vs best single ({bc}) {singles[bc]:.3f} m, ratio {a / singles[bc]:.2f}")
    rows.append(f"| all-modalities 3-D RMSE ≤ ½ best single modality | {'; '.join(parts)} | "
                f"{'**met**' if ok else '**missed**'} |")
    los = [m(r, model_name("all")) for r in (rnd, strong)]
    rows.append(f"| LOS error near the rupture ≲ λ/4 (all modalities) | RMSE {los[0]['los_rmse_lambda4_near']:.1f} / "
                f"{los[1]['los_rmse_lambda4_near']:.1f} × λ/4; {los[0]['los_within_lambda4_near'] * 100:.0f} / "
                f"{los[1]['los_within_lambda4_near'] * 100:.0f} % of near pixels within λ/4 | **missed** (InSAR not "
                f"learnt; the unwrapper falls back to path following where σ is too large) |")
    cal = [m(r, model_name(c))["calibration"] for r in (rnd, strong)
           for c in ("optical", "sar", "insar", "optical+sar", "optical+insar", "all")]
    rows.append(f"| σ calibration (share \\|err\\| < σ ≈ 0.76 for a Laplace predictive) "
                f"| {min(cal):.2f}–{max(cal):.2f} "
                f"over both sets and all modality combinations | close |")
    return "\n".join(rows)


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**missed**")


NAMED = {"strong": "simulated strong", "real": "real texture", "real_large": "real texture, Mw 7.5–7.9",
         "real_cloudmask": "the same with clouds masked as nodata"}
# the same sets with the true rupture trace given to the model (fault_side, 0.7.0)
NAMED_TRACE = {"trace_random": "simulated random events", "real_trace": "real texture",
               "real_c_cloudmask_trace": "the same with clouds masked as nodata",
               "real_large_trace": "real texture, Mw 7.5–7.9",
               "real_large_trace_off3": "the same, trace drawn 3 px off the rupture",
               "real_cloudmask_trace": "the same with clouds masked as nodata"}
# the geologist's two-step workflow: the trace extracted from a blind run, given to a second run
NAMED_EXTRACTED = {"real_trace_extracted": "real texture", "real_large_trace_extracted": "real texture, Mw 7.5–7.9",
                   "real_cloudmask_trace_extracted": "the same with clouds masked as nodata"}


def targets_step7(sets: dict[str, dict | None], named: dict[str, str] | None = None,
                  geologist_only: bool = False) -> str:
    """Issue #11 (Step 7) targets, network with optical only (the baselines' input), from every evaluated set;
    ``geologist_only``: only the step, slope and ±3-px rows (the trace-given sets)."""
    named = named or NAMED
    geo = {k: sets.get(k) for k in named}
    rows = ["| target (issue #11) | measured, QuakeFusion [optical] | verdict |", "|---|---|---|"]

    def over_sets(fn) -> tuple[list[str], bool | None]:
        parts, oks = [], []
        for k, res in geo.items():
            if res is None:
                continue
            txt, ok = fn(res["methods"][OPT])
            parts.append(f"{named[k]}: {txt}")
            if ok is not None:
                oks.append(ok)
        return parts, (all(oks) if oks else None)

    def step_err(r: dict) -> tuple[str, bool | None]:
        s = r["step"]["ge0.3"]
        if not s["profiles"]:
            return "no profile with a step ≥ 0.3 px", None
        w = s.get("weighted_error_pct_median")
        wtxt = f"; 1/σ²-weighted as the offsets tool reads it: {w:+.1f} %" if w is not None else ""
        return (f"median {s['error_pct_median']:+.1f} % (mean \\|·\\| {s['error_pct_mae']:.1f} %, "
                f"{_pct(s['within_5pct'])} of {s['profiles']} profiles within ±5 %{wtxt})",
                abs(s["error_pct_median"]) <= 5.0)

    parts, ok = over_sets(step_err)
    rows.append(f"| step error within ±5 % for steps ≥ 0.3 px (median over profiles) | {'; '.join(parts)} "
                f"| {_verdict(ok)} |")

    def slope(r: dict) -> tuple[str, bool | None]:
        if not r["slope_scenes"]:
            return "no scene with ≥ 0.3 px of fault-parallel range", None
        v = r["slope_median"]
        return f"{v:.2f} (median of {r['slope_scenes']} scenes)", 0.97 <= v <= 1.03

    parts, ok = over_sets(slope)
    rows.append(f"| slope of estimated vs true fault-parallel displacement 0.97–1.03 | {'; '.join(parts)} "
                f"| {_verdict(ok)} |")

    def share3(r: dict) -> tuple[str, bool | None]:
        v = r["step"]["ge0.3"].get("share_within_3px_median", float("nan"))
        if v != v:
            return "–", None
        return f"{v:.2f}", v >= 0.9

    parts, ok = over_sets(share3)
    rows.append(f"| ≥ 90 % of the step within ±3 px of the trace (median over profiles) | {'; '.join(parts)} "
                f"| {_verdict(ok)} |")
    if geologist_only:
        return "\n".join(rows)
    parts, oks, useless = [], [], False
    for k in ("real", "real_large", "real_cloudmask"):
        res = geo.get(k)
        if res is None:
            continue
        q = res["methods"][OPT]
        for stat, key in (("mean", "epe_px_near"), ("median", "epe_px_near_median")):
            b = {n: res["methods"][n][key] for n in (DIS_FS0, CORR)}
            bn = min(b, key=b.get)
            red = 1 - q[key] / b[bn]
            oks.append(red >= 0.5)
            zero = res["methods"][ZERO][key]
            parts.append(f"{named[k]}, {stat}: {q[key]:.3f} px vs {b[bn]:.3f} ({bn.split(' (')[0]}), "
                         f"{'−' if red >= 0 else '+'}{abs(red) * 100:.0f} % (predicting zero: {zero:.3f} px)")
            useless |= q[key] > 0.8 * zero
    verdict = _verdict(all(oks) if oks else None)
    if oks and all(oks) and useless:
        verdict += " against the baselines, but **not clearly better than predicting zero**"
    rows.append(f"| near-rupture E/N EPE ≥ 50 % below the better of DIS (finest scale 0) and the corrected "
                f"correlator, real texture | {'; '.join(parts)} | {verdict} |")
    for key, what in (("no_motion_real", "real pair without motion, as it is (h)"),
                      ("no_motion", "real pair + synthetic cross-sensor shifts (g)")):
        nm = sets.get(key)
        if nm is None:
            continue
        q = nm["methods"][OPT]
        fs = q["false_step_px"]
        ok = q["noise_floor_px_median"] <= 0.05 and fs["max"] <= 0.1
        rows.append(f"| noise floor ≤ 0.05 px median and no false step > 0.1 px, {what} "
                    f"| noise floor {q['noise_floor_px_median']:.3f} px; false step per profile: median "
                    f"{fs['median']:.3f}, 95th pct {fs['p95']:.3f}, max {fs['max']:.3f} px ({q['profiles']} "
                    f"profiles) | {_verdict(ok)} |")
    if sets.get("no_motion") is None and sets.get("no_motion_real") is None:
        rows.append("| noise floor ≤ 0.05 px and no false step > 0.1 px | – | not measured |")
    parts, oks = [], []
    for k in ("real", "real_large", "real_cloudmask"):
        res = geo.get(k)
        if res is None:
            continue
        q = res["methods"][OPT]
        oks.append(0.68 <= q["calibration_en"] <= 0.84)
        parts.append(f"{named[k]}: E {q['calibration_e']:.2f}, N {q['calibration_n']:.2f}, "
                     f"E+N {q['calibration_en']:.2f}")
    rows.append(f"| share \\|err\\| < σ within 0.68–0.84 on real-texture scenes (E+N; σ of a Laplace predictive, "
                f"ideal 0.76) | {'; '.join(parts)} | {_verdict(all(oks) if oks else None)} |")
    rp = [(named[k], res["methods"][OPT]) for k, res in geo.items()
          if res is not None and "rupture_auc" in res["methods"][OPT]]
    if rp:
        rows.append("| rupture probability (no target; Step 10 builds on it) | " + "; ".join(
            f"{n}: AUC {r['rupture_auc']:.3f}, F1 {r['rupture_f1']:.2f}, median distance of p > 0.5 pixels to the "
            f"trace {r['rupture_trace_distance_px_median']:.1f} px" for n, r in rp) + " | – |")
    return "\n".join(rows)


def relight_table() -> str:
    """Each simulated set with the optical pair fed raw -> relit from the DEM (the backend's default)."""
    def row(m: dict) -> list[str]:
        st = (m.get("step") or {}).get("ge0.3") or {}
        return [f"{m['epe_px_near']:.3f}", f"{m['epe_px_far']:.3f}", f"{m['noise_floor_px_median']:.3f}",
                f"{m['calibration_en']:.2f}", f"{st.get('error_pct_median', float('nan')):+.1f} %",
                f"{m.get('slope_median', float('nan')):.2f}"]

    out = ["| set | model [modalities] | relit runs | near EPE (px) | far EPE (px) | noise floor (px) | "
           "share abs(err) < σ | step error | slope |", "|---|---|---|---|---|---|---|---|---|"]
    for label, (off, on) in RELIGHT_PAIRS.items():
        a, b = _load(off), _load(on)
        if not (a and b):
            return f"*(not evaluated: run `make evaluate` → `runs/{off}/`, `runs/{on}/`)*"
        rl = b.get("relit") or {}
        for combo in ("optical", "all"):
            ra, rb = row(a["methods"][model_name(combo)]), row(b["methods"][model_name(combo)])
            out.append(f"| {label} | [{combo}] | {rl.get('relit', '?')} of {rl.get('runs', '?')} | "
                       + " | ".join(f"{x} → **{y}**" for x, y in zip(ra, rb)) + " |")
    return "\n".join(out)


PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")


def recover_fills(template: str, card: str) -> dict[str, str] | None:
    """What each placeholder of ``template`` was filled with in ``card`` (filled from that template), or None when
    the card does not match the template or the split is ambiguous (a lazy and a greedy match differ: the fixed
    text after a placeholder also occurs inside its fill)."""
    parts = PLACEHOLDER.split(template)
    fixed, names = parts[0::2], parts[1::2]
    # an evaluation's table ends with its run-time line: that tells two tables apart when only a blank line
    # separates their placeholders
    table_end = r"\nRun time \(s, whole test set\)[^\n]*"

    def split(lazy: bool) -> tuple[str, ...] | None:
        q = "?" if lazy else ""
        rx = re.escape(fixed[0]) + "".join((f"(.*{q}{table_end})" if name in SETS else f"(.*{q})") + re.escape(f)
                                           for name, f in zip(names, fixed[1:]))
        m = re.fullmatch(rx, card, re.S)
        return m.groups() if m else None

    lazy, greedy = split(True), split(False)
    if lazy is None or lazy != greedy:
        return None
    fills: dict[str, str] = {}
    for name, text in zip(names, lazy):
        if fills.setdefault(name, text) != text:  # a placeholder used twice must have been filled alike
            return None
    return fills


def committed_fills() -> dict[str, str]:
    """The fills of the committed card (git HEAD's card and template); {} without git or when ambiguous."""
    def show(path: str) -> str | None:
        try:
            return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return None

    template, card = show("models/MODEL_CARD.template.md"), show("models/MODEL_CARD.md")
    fills = recover_fills(template, card) if template and card else None
    if fills is None:
        print("the committed card's tables could not be recovered: sets not evaluated here stay placeholders")
    return fills or {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--finetune", default="")
    ap.add_argument("--no-keep", action="store_true",
                    help="sets not evaluated on this machine become placeholders (default: the committed card's text)")
    a = ap.parse_args()
    out = (ROOT / "models" / "MODEL_CARD.template.md").read_text()
    kept = {} if a.no_keep else committed_fills()
    used_kept: list[str] = []
    left: list[str] = []

    def put(ph: str, text: str | None, placeholder: str) -> None:
        """``text`` (None: not evaluated here) for ``{{ph}}``; else the committed card's, else ``placeholder``."""
        nonlocal out
        if text is None:
            text = kept.get(ph)
            (left if text is None else used_kept).append(ph)
        out = out.replace("{{" + ph + "}}", placeholder if text is None else text)

    for ph, folder in SETS.items():
        md = ROOT / "runs" / folder / "metrics.md"
        put(ph, _table(md) if md.exists() else None, f"*(not evaluated: run `make evaluate` → `runs/{folder}/`)*")
    rnd, strong = _load("eval"), _load("eval_strong")
    relight = relight_table()
    put("TABLE_RELIGHT", None if relight.startswith("*(not evaluated") else relight, relight)
    put("TARGETS", targets(rnd, strong) if rnd and strong else None, "*(not evaluated)*")
    sets = {"strong": strong, "real": _load("eval_real_texture"), "real_large": _load("eval_real_texture_large"),
            "real_cloudmask": _load("eval_real_texture_large_cloudmask"),
            "no_motion": _load("eval_no_motion"), "no_motion_real": _load("eval_no_motion_real")}
    step7 = targets_step7(sets)
    put("TARGETS_STEP7", step7 if all(sets.values()) else None, step7)
    for ph, named in (("TARGETS_STEP7_TRACE", NAMED_TRACE), ("TARGETS_STEP7_EXTRACTED", NAMED_EXTRACTED)):
        loaded = {k: _load(SETS[f"TABLE_{k.upper()}"]) for k in named}
        table = targets_step7(loaded, named, geologist_only=True)
        put(ph, table if all(loaded.values()) else None, table)
    out = out.replace("* {{FINETUNE}}\n", f"* {a.finetune}\n" if a.finetune else "")
    # facts measured outside the evaluation (training run, size, speed): models/card_facts.json, {"KEY": "text"}
    facts = ROOT / "models" / "card_facts.json"
    for key, text in (json.loads(facts.read_text()) if facts.exists() else {}).items():
        out = out.replace("{{" + key + "}}", str(text))
    (ROOT / "models" / "MODEL_CARD.md").write_text(out)
    print("models/MODEL_CARD.md written"
          + (f"; {len(used_kept)} of its tables kept from the committed card (not evaluated here)" if used_kept else "")
          + ("; placeholders left: " + ", ".join(left) if left else ""))


if __name__ == "__main__":
    main()
