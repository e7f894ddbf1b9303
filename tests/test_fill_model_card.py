"""tools/fill_model_card.py keeps the committed card's tables for sets not evaluated on this machine (runs/ is not in
git): the fills are recovered from the card and the template it was filled from, and only when that is unambiguous."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _filler():
    spec = importlib.util.spec_from_file_location("fill_model_card", ROOT / "tools/fill_model_card.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _render(template: str, fills: dict[str, str]) -> str:
    for name, text in fills.items():
        template = template.replace("{{" + name + "}}", text)
    return template


def test_two_tables_separated_by_a_blank_line_are_told_apart():
    fill = _filler()
    template = "# Card\n\n{{TABLE_REAL}}\n\n{{TABLE_SAME}}\n\nSize: {{MODEL_SIZE}}.\n"
    a = "| a | 1 |\n\nnote\n\nRun time (s, whole test set): network 1.0"
    b = "*Simulator v2*\n\n| b | 2 |\n\nRun time (s, whole test set): network 2.0"
    fills = {"TABLE_REAL": a, "TABLE_SAME": b, "MODEL_SIZE": "5.9 MB"}
    assert fill.recover_fills(template, _render(template, fills)) == fills


def test_an_ambiguous_split_is_refused():
    fill = _filler()
    template = "{{MODEL_SIZE}} and {{MODEL_VERSION}}"
    # " and " occurs inside the first fill: which part belongs to which placeholder cannot be told
    assert fill.recover_fills(template, "5 MB and 6 MB and 0.8.1") is None
    assert fill.recover_fills("x {{MODEL_SIZE}} y", "no match") is None  # not filled from this template


def test_the_shipped_card_is_recovered_exactly_from_its_template():
    fill = _filler()
    template = (ROOT / "models/MODEL_CARD.template.md").read_text()
    card = (ROOT / "models/MODEL_CARD.md").read_text()
    fills = fill.recover_fills(template, card)
    assert fills is not None
    assert _render(template, fills) == card
    # the tables are whole evaluations: each ends with its run-time line
    assert all(fills[name].rstrip().splitlines()[-1].startswith("Run time (s, whole test set)")
               for name in fill.SETS if "not evaluated" not in fills[name])
