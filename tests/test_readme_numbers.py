"""The README's summary quotes benchmarks/RESULTS.md: every number it gives with a unit is a number there.

A simple extraction, so that the two cannot drift apart silently: in the summary paragraph ("What you see
without training anything"), the one after it, the one on the other losses ("What the shipped runs show") and
the one on the τ study ("What the shipped τ study shows"),
every run of numbers that ends in a unit (%, s, min, MB), such as "75.1 ± 2.8 → 45.3 ± 1.0 %" or "69–74 s", gives its numbers, and each must occur in RESULTS.md as a
number (not as part of a longer one: 59.8 does not match 59.81). The RESULTS.md sections the summary names
must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SUMMARY_STARTS = ("**What you see without training anything.**", "From a fresh clone, after `make env`",
                  "**What the shipped runs show**", "**What the shipped τ study shows**")

NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
SEPARATOR = r"\s*(?:±|→|–|-|vs\.?|,|and|to)\s*"
QUANTITY = re.compile(rf"(?<![\w.]){NUMBER}(?:{SEPARATOR}{NUMBER})*\s*(?:%|s|min|MB)(?!\w)")


def paragraphs(text: str) -> list[str]:
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text)]


def summary() -> list[str]:
    found = [p for p in paragraphs(README.read_text(encoding="utf-8")) if p.startswith(SUMMARY_STARTS)]
    assert len(found) == len(SUMMARY_STARTS), f"README's summary paragraphs not found (they start with {SUMMARY_STARTS})"
    return found


def quoted_numbers(text: str) -> list[str]:
    """Every number in a run of numbers that ends in a unit, without thousands separators."""
    return [n.replace(",", "") for match in QUANTITY.finditer(text) for n in re.findall(NUMBER, match.group())]


def numbers_in(text: str) -> set[str]:
    return {n.replace(",", "") for n in re.findall(rf"(?<![\w.]){NUMBER}", text)}


def test_the_extraction_takes_every_number_of_a_quantity_and_only_those():
    text = "Textures 75.1 ± 2.8 → 45.3 ± 1.0 %, AUROC 82.8 → 90.0, 83.3 → 95.2 %, 69–74 s, 1,440 s, 2.9 MB, 60 epochs, 3 seeds"
    assert quoted_numbers(text) == ["75.1", "2.8", "45.3", "1.0", "82.8", "90.0", "83.3", "95.2", "69", "74", "1440", "2.9"]
    assert "59.8" not in numbers_in("ECE 59.81 ± 0.26 %") and "59.81" in numbers_in("ECE 59.81 ± 0.26 %")


def test_every_number_the_readme_summary_quotes_with_a_unit_is_in_results():
    results = numbers_in(RESULTS.read_text(encoding="utf-8"))
    quoted = [n for paragraph in summary() for n in quoted_numbers(paragraph)]
    assert len(quoted) >= 20, f"too few numbers found in the README summary: {quoted}"
    missing = sorted(set(quoted) - results, key=quoted.index)
    assert not missing, f"README summary quotes numbers that benchmarks/RESULTS.md does not contain: {missing}"


@pytest.mark.parametrize("paragraph", range(len(SUMMARY_STARTS)))
def test_the_results_sections_the_summary_names_exist(paragraph):
    text = summary()[paragraph]
    named = re.findall(r'section "([^"]+)"', text)
    assert named, "the summary names the RESULTS.md section its numbers come from"
    headings = [line.lstrip("#").strip() for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    for name in named:
        assert any(h.startswith(name) for h in headings), f'RESULTS.md has no section "{name}"'
