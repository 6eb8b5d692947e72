"""The suite as one web page (``lnlab.report``): ``index.html`` in the figures folder.

A unit test builds the page from a synthetic folder (executed notebooks written with nbformat, a tiny
PNG, CSV / Markdown / LaTeX tables) and checks the grouping by notebook, the recipe and seeds line
and the HTML escaping. The browser test runs the suite for real on notebook 00 (no CIFAR-10 run
needed, about a minute on a CPU), opens ``index.html`` from the file system in Chromium (Playwright,
``$LNLAB_CHROMIUM`` or ``/usr/bin/chromium``) and checks that every image loads, every link resolves
to a file there, nothing is fetched from elsewhere and nothing is logged as an error; it saves a
full-page screenshot as ``report/index.png`` under ``$LNLAB_TEST_OUTPUT`` (else pytest's temporary folder).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from PIL import Image

from lnlab import report, suite
from tests_support import chromium



# --------------------------------------------------------------------------- a synthetic folder


def _cell(source: str, *tags: str):
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _write_notebook(folder: Path, stem: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["papermill"] = {"end_time": "2026-01-02T03:04:05.000001", "exception": None}
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


def _synthetic_folder(folder: Path) -> None:
    _write_notebook(folder, "01_alpha", [
        new_markdown_cell("# 01 · Alpha <script>alert(1)</script> & co\n\nWhat *alpha* shows, see [the paper](https://x.org)."),
        _cell('profile = "quick"\ndevice = "auto"\nseeds = [0]\ntaus = [0.04]', "parameters"),
        _cell('# Parameters\nprofile = "ci"\ndevice = "cpu"\nseeds = [1, 2]\n', "injected-parameters"),
        _cell('NOTEBOOK = "01_alpha"\nruns = load(profile)'),
        new_markdown_cell("## The table comes first"),
        _cell('plots.save_table(table, f"{NOTEBOOK}_numbers", output)'),
        new_markdown_cell("## The curve <b>bold</b>"),
        _cell('plots.save_figure(fig, f"{NOTEBOOK}_curve_{ood}", output)'),
    ])
    _write_notebook(folder, "02_beta", [  # no injected parameters: the parameters cell is read
        new_markdown_cell("# 02 · Beta"),
        _cell('profile = "nosuchprofile"\nseeds = [3]', "parameters"),
        _cell('runs = load(profile)\ntables.export_table(table, "02_beta_table", output)'),
    ])
    Image.new("RGB", (8, 6), "white").save(folder / "01_alpha_curve_mnist.png")
    (folder / "01_alpha_curve_mnist.pdf").write_bytes(b"%PDF-1.4 fake")
    (folder / "01_alpha_numbers.csv").write_text("run,loss\n<b>CE</b>,0.123456789\nLogitNorm,2\n", encoding="utf-8")
    (folder / "02_beta_table.md").write_text(
        "| score   | AUROC CE   | AUROC LogitNorm   |\n|:--------|-----------:|------------------:|\n"
        "| MSP <i> | 90.1       | **95.2**          |\n", encoding="utf-8")
    (folder / "02_beta_table.csv").write_text("score,CE,LogitNorm\nMSP,90.1,95.2\n", encoding="utf-8")
    (folder / "02_beta_table.tex").write_text("\\begin{tabular}\\end{tabular}\n", encoding="utf-8")
    (folder / "README.md").write_text("not a notebook's output\n", encoding="utf-8")


def test_write_index_groups_by_notebook_with_recipe_seeds_and_escaping(tmp_path):
    _synthetic_folder(tmp_path)
    page_path = report.write_index(tmp_path)
    assert page_path == tmp_path / "index.html"
    page = page_path.read_text(encoding="utf-8")

    alpha, beta = page.split('<section class="notebook"')[1:]
    # grouping and order: each notebook's files in its own section, in the order the notebook makes them
    assert "01_alpha_numbers" in alpha and "01_alpha_curve_mnist" in alpha and "02_beta" not in alpha
    assert "02_beta_table" in beta and "01_alpha" not in beta
    assert alpha.index("The table comes first") < alpha.index("01_alpha_numbers") < alpha.index("01_alpha_curve_mnist")
    assert '<img src="01_alpha_curve_mnist.png"' in alpha and '<a href="01_alpha_curve_mnist.pdf">' in alpha
    for name in ("02_beta_table.csv", "02_beta_table.md", "02_beta_table.tex"):
        assert f'href="{name}"' in beta
    assert "README" not in page

    # recipe and seeds: the injected values win over the parameters cell; an unknown profile is just named
    assert "profile ci: fastnet (width 32), 10 epochs" in alpha and "device cpu" in alpha
    assert "<dt>Seeds</dt><dd>1, 2</dd>" in alpha and "<dt>τ</dt><dd>0.04</dd>" in alpha
    assert "<dt>Recipe</dt><dd>profile nosuchprofile</dd>" in beta and "<dt>Seeds</dt><dd>3</dd>" in beta
    assert "Notebooks executed on 2026-01-02 03:04 UTC" in page and "profiles <strong>ci</strong>, " \
        "<strong>nosuchprofile</strong>" in page

    # escaping: markup from notebooks and tables is shown, not run; the Markdown table keeps its bold
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert "The curve &lt;b&gt;bold&lt;/b&gt;" in alpha
    assert "&lt;b&gt;CE&lt;/b&gt;" in alpha and "0.12346" in alpha
    assert "MSP &lt;i&gt;" in beta and "<strong>95.2</strong>" in beta and 'class="right"' in beta

    # every link is relative and names a file in the folder (or an anchor on the page); the notebooks' pages exist
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert links and not [link for link in links if re.match(r"[a-z]+:|/", link)]
    for link in links:
        if link.startswith("#"):
            assert f'id="{link[1:]}"' in page
        else:
            assert (tmp_path / unquote(link)).is_file(), link
    assert (tmp_path / "01_alpha.html").is_file() and 'href="01_alpha.html"' in alpha


def test_write_index_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="lnlab figures"):
        report.write_index(tmp_path)
    with pytest.raises(FileNotFoundError, match="03_missing"):
        report.write_index(tmp_path, ["03_missing"])
    assert report.main([str(tmp_path / "nowhere")]) == 2


# --------------------------------------------------------------------------- a real suite run, in Chromium


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory) -> Path:
    base = os.environ.get("LNLAB_TEST_OUTPUT")
    folder = Path(base) / "report" if base else tmp_path_factory.mktemp("report_output")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def suite_folder(tmp_path_factory) -> Path:
    """Notebook 00 executed by the suite (it trains its toy in the notebook: no run to pretrain)."""
    folder = tmp_path_factory.mktemp("report_suite")
    runs = os.environ.get("LNLAB_RUNS") or str(tmp_path_factory.getbasetemp() / "ci_runs")
    suite.run_suite(profile="ci", notebooks=["00"], output=folder, runs_root=runs, device="cpu", pretrain=False)
    return folder


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def test_suite_page_in_chromium(suite_folder, browser, output_dir):
    index = suite_folder / "index.html"
    assert index.is_file(), "run_suite wrote no index.html"
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems, fetched = [], []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(index.as_uri(), wait_until="load")

    images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
    assert len(images) == 3, images  # notebook 00 saves three figures
    assert not [src for src, width in images if not width], f"images that did not load: {images}"
    links = page.eval_on_selector_all("a[href]", "els => els.map(e => [e.getAttribute('href'), e.href])")
    assert len(links) > len(images)
    for raw, url in links:
        if raw.startswith("#"):
            assert page.locator(f"[id='{raw[1:]}']").count() == 1, f"link {raw} names no section"
            continue
        parsed = urlparse(url)
        assert parsed.scheme == "file", f"link {raw} leaves the folder"
        assert Path(unquote(parsed.path)).is_file(), f"link {raw} names no file"
    assert not [url for url in fetched if not url.startswith("file:")], f"fetched from elsewhere: {fetched}"
    assert not problems, problems
    title = page.locator("section.notebook h2").all_inner_texts()
    assert title == ["00 · The mechanism on a 2-D toy: scale invariance and the logit norm"]
    page.screenshot(path=str(output_dir / "index.png"), full_page=True)
    page.close()

    exported = (suite_folder / "00_mechanism.html").read_text(encoding="utf-8")
    assert "An interactive explorer was here" in exported and "unpkg.com" not in exported
    notebook_page = browser.new_page()  # the linked notebook page opens offline without errors too
    problems.clear()
    notebook_page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                     if message.type == "error" else None)
    notebook_page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    notebook_page.goto((suite_folder / "00_mechanism.html").as_uri(), wait_until="load")
    assert not problems, problems
    assert notebook_page.eval_on_selector_all("img", "els => els.filter(e => !e.naturalWidth).length") == 0
    notebook_page.close()
