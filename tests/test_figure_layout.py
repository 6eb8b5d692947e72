"""No figure of the suite has overlapping text (tick labels, axis titles, panel titles, legend texts): checked
with matplotlib's own text bounding boxes (lnlab.layout) on every figure the suite writes, reference profile."""

from __future__ import annotations

import json

import pytest
from matplotlib.lines import Line2D

from lnlab import suite
from lnlab.layout import OverlappingTextError, check_layout, text_overlaps
from lnlab.plots import new_figure, paper_style
from lnlab.tau_plots import tau_axis
from tests.tests_support import requires_cifar10


def test_overlapping_tick_labels_and_titles_are_found():
    with paper_style():
        fig, axes = new_figure(2, 1, width=2.0, height=1.5)
        axes[0, 0].set_xscale("log")
        axes[0, 0].set_xlim(0.03, 0.045)  # minor log ticks: "3×10⁻²" and "4×10⁻²" print on top of each other
        axes[0, 0].set_xlabel("a long axis title that runs into its neighbour")
        axes[0, 1].set_xlabel("and the neighbour's own long axis title")
    problems = text_overlaps(fig)
    assert any("x label" in p and "panel 1" in p for p in problems)


def test_a_legend_panel_with_its_axis_off_is_checked_by_what_it_draws():
    with paper_style():
        fig, axes = new_figure(1, 1, width=2.0, height=1.6)
        ax = axes[0, 0]
        ax.legend(handles=[Line2D([], [], label=f"a long legend entry, number {i}") for i in range(16)], loc="center",
                  frameon=False)
        shown = text_overlaps(fig)
        assert any("tick" in p and "legend" in p for p in shown)  # the tick labels lie under the legend
        ax.axis("off")  # a legend panel: its ticks are not drawn
    assert text_overlaps(fig) == []
    ax.set_title("a title across the legend", y=0.5)  # what it still draws is still checked
    assert any("title" in p and "legend" in p for p in text_overlaps(fig))


def test_a_tau_axis_labels_each_tau_once_without_overlap():
    with paper_style():
        fig, axes = new_figure(1, 1, width=2.2, height=1.6)
        axes[0, 0].plot([0.005, 0.01, 0.02, 0.04, 0.1], [1, 2, 3, 4, 5])
        tau_axis(axes[0, 0], [0.005, 0.01, 0.02, 0.04, 0.1])
    assert [t.get_text() for t in axes[0, 0].get_xticklabels()] == ["0.005", "0.01", "0.02", "0.04", "0.1"]
    assert text_overlaps(fig) == []


def test_strict_mode_refuses_to_save_an_overlapping_figure(tmp_path, monkeypatch):
    from lnlab.plots import save_figure

    with paper_style():
        fig, axes = new_figure(2, 1, width=1.5, height=1.2)
        for ax in axes.flat:
            ax.set_xlabel("overlapping axis title")
    monkeypatch.setenv("LNLAB_STRICT_LAYOUT", "1")
    with pytest.raises(OverlappingTextError, match="overlapping axis title"):
        save_figure(fig, "bad", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written
    monkeypatch.delenv("LNLAB_STRICT_LAYOUT")
    check_layout(fig, "bad")  # not strict: no error
    assert save_figure(fig, "bad", tmp_path)


@pytest.mark.slow
@requires_cifar10
def test_no_figure_of_the_reference_suite_has_overlapping_text(tmp_path, monkeypatch):
    report = tmp_path / "layout.jsonl"
    monkeypatch.setenv("LNLAB_LAYOUT_REPORT", str(report))
    suite.run_suite("reference", output=tmp_path / "figures", runs_root=tmp_path / "runs")
    checked = [json.loads(line) for line in report.read_text().splitlines()]
    written = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {entry["figure"] for entry in checked} == written and len(written) >= 15
    bad = {entry["figure"]: entry["overlaps"] for entry in checked if entry["overlaps"]}
    assert not bad, f"figures with overlapping text: {bad}"
