"""The suite as one web page: ``index.html`` in the figures folder, every figure and table by notebook.

After :func:`lnlab.suite.run_suite` has executed the notebooks, :func:`write_index` writes
``<output>/index.html``: one section per executed notebook, in order, headed with the notebook's
title, the recipe and the seeds it ran with (read from the parameters papermill injected), its
introduction, a link to the executed notebook exported as a web page (nbconvert, ``<stem>.html``
next to the ``.ipynb``), then its figures (the PNG, linked to the PDF) and tables (the ``.md`` or
``.csv`` as an HTML table, linked to the CSV / Markdown / LaTeX files) in the order the notebook
makes them, each under the notebook heading it belongs to. The page opens from the file system:
relative links only, an inline stylesheet, no script, font or stylesheet from elsewhere.

Rebuild it for a folder the suite wrote (no notebook is run)::

    python -m lnlab.report figures/
"""

from __future__ import annotations

import ast
import csv
import datetime
import html
import itertools
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat

from lnlab import __version__
from lnlab.atomic import atomic_write_bytes
from lnlab.formatting import format_number

__all__ = ["write_index"]

INDEX = "index.html"
FIGURE_SUFFIXES = (".png", ".pdf")
TABLE_SUFFIXES = (".md", ".csv", ".tex")
_DOWNLOADS = {".pdf": "PDF", ".png": "PNG", ".csv": "CSV", ".md": "Markdown", ".tex": "LaTeX"}
_DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
_NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_NOTE = ("<p><em>An interactive explorer was here. It runs in a live kernel: open the notebook in "
                "JupyterLab (<code>make lab</code>) to use it.</em></p>")


def write_index(output_dir: str | os.PathLike, notebooks: Sequence[str | os.PathLike] | None = None) -> Path:
    """Write ``<output_dir>/index.html``: every figure and table of the executed notebooks; return its path.

    ``notebooks``: the executed notebooks in page order (paths, or names of ``.ipynb`` files in
    ``output_dir``); default every ``NN_*.ipynb`` there. A notebook's files are
    ``<stem>_<name>.{png,pdf,csv,md,tex}`` (:func:`lnlab.plots.save_figure`, :func:`lnlab.tables.export_table`).
    Each notebook is also exported to ``<stem>.html`` with nbconvert (skipped, with a warning, if that
    fails). The section header gives the recipe from the notebook's injected parameters (papermill's
    ``injected-parameters`` cell over its ``parameters`` cell) and ``lnlab.profiles.make_config``.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}: pass the output folder of `lnlab figures`")
    paths = _notebook_files(folder, notebooks)
    stems = [p.stem for p in sorted(folder.glob(_NOTEBOOK_GLOB))] + [p.stem for p in paths]
    notebooks_read = [(path, nbformat.read(path, as_version=4)) for path in paths]
    sections = [_section(folder, path, nb, stems) for path, nb in notebooks_read]
    page = _PAGE.format(style=_STYLE, header=_header(notebooks_read), toc=_toc(notebooks_read),
                        sections="\n".join(sections), version=html.escape(__version__))
    return atomic_write_bytes(folder / INDEX, page.encode("utf-8"))


# --------------------------------------------------------------------------- what is in the folder


def _notebook_files(folder: Path, notebooks: Sequence[str | os.PathLike] | None) -> list[Path]:
    if notebooks is None:
        found = sorted(folder.glob(_NOTEBOOK_GLOB))
        if not found:
            raise ValueError(f"no executed notebooks (NN_*.ipynb) in {folder}: run `lnlab figures` first")
        return found
    paths = []
    for name in notebooks:
        path = Path(name)
        path = path if path.is_file() else folder / path.with_suffix(".ipynb").name
        if not path.is_file():
            raise FileNotFoundError(f"no executed notebook {name!r} in {folder}")
        paths.append(path)
    return paths


def _outputs(folder: Path, stem: str, stems: Sequence[str]) -> dict[str, dict[str, Path]]:
    """``{name: {suffix: path}}`` of a notebook's figure and table files (not those of a longer stem)."""
    longer = [s for s in stems if s != stem and s.startswith(f"{stem}_")]
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.glob(f"{stem}_*")):
        if path.suffix in FIGURE_SUFFIXES + TABLE_SUFFIXES and path.is_file() \
                and not any(path.name.startswith(f"{s}_") for s in longer):
            found.setdefault(path.stem, {})[path.suffix] = path
    return found


def _tags(cell: Any) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _parameters(nb: Any) -> dict[str, Any]:
    """The values a notebook ran with: its ``parameters`` cell, overridden by papermill's injected cell.

    A value that is not a literal is kept as its source text."""
    values: dict[str, Any] = {}
    for tag in ("parameters", "injected-parameters"):
        for cell in (c for c in nb.cells if tag in _tags(c)):
            try:
                body = ast.parse(cell.source).body
            except SyntaxError:
                continue
            for node in body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        values[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        values[node.targets[0].id] = ast.get_source_segment(cell.source, node.value)
    return values


def _uses(nb: Any, name: str) -> bool:
    """Whether the notebook's code (beyond its parameter cells) mentions ``name``."""
    code = (c.source for c in nb.cells if c.cell_type == "code"
            and not {"parameters", "injected-parameters"} & set(_tags(c)))
    return any(re.search(rf"\b{re.escape(name)}\b", source) for source in code)


def _recipe(parameters: dict[str, Any]) -> str:
    """What the profile trains (model, epochs, data, device), from ``make_config``; the bare profile if that fails."""
    from lnlab.profiles import REFERENCE, make_config

    profile = parameters.get("profile")
    try:
        config = make_config(str(profile))
    except Exception:  # an unknown profile, no reference runs here: the page is still written
        return f"profile {profile}"
    model = config.model + (f" (width {config.model_width})" if config.model_width else "")
    dataset = _DATASETS.get(config.dataset, config.dataset)
    data = f"{dataset}, {config.subset_per_class} training images per class" if config.subset_per_class \
        else f"{dataset} training set"
    if profile == REFERENCE:
        return (f"profile reference: the shipped laptop reference recipe ({model}, {config.epochs} epochs, {data}, "
                f"trained on {config.device}); its runs are loaded, not trained")
    device = parameters.get("device")
    device = config.device if device in (None, "auto") else device
    text = f"profile {profile}: {model}, {config.epochs} epochs, {data}, device {device}"
    return text + ("; the laptop reference recipe, whose runs ship with lnlab" if profile == "laptop" else "")


def _resolved(key: str, parameters: dict[str, Any]) -> str:
    """A parameter as the notebook used it: ``seeds=None`` / ``sweep_taus=None`` resolved as ``lnlab.profiles`` does."""
    value = parameters[key]
    if value is None and key in ("seeds", "sweep_taus") and "profile" in parameters:
        try:
            from lnlab.profiles import default_seeds, sweep_taus

            if key == "seeds":
                value = default_seeds(parameters["profile"], parameters.get("taus") or (0.04,))
            else:
                value = sweep_taus(parameters["profile"], None)
            return f"{_values(value)} (all shipped)" if parameters["profile"] == "reference" else _values(value)
        except ValueError:
            return "none"
    return _values(value)


def _values(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return ", ".join(format_number(v) if isinstance(v, float) else str(v) for v in values) or "none"
    return str(values)


# --------------------------------------------------------------------------- markdown


def _markdown(text: str) -> str:
    """Notebook markdown as HTML: raw HTML escaped, links and images kept as their text (the page links nothing else)."""
    try:
        import mistune  # nbconvert's markdown renderer
    except ImportError:
        return "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    rendered = mistune.create_markdown(escape=True)(text)
    rendered = re.sub(r'<img [^>]*alt="([^"]*)"[^>]*/?>', r"\1", rendered)
    return re.sub(r"</?a\b[^>]*>", "", rendered)


def _inline(text: str) -> str:
    return re.sub(r"^<p>(.*)</p>\s*$", r"\1", _markdown(text).strip(), flags=re.S)


def _title_and_intro(nb: Any, stem: str) -> tuple[str, str]:
    """The first markdown heading (the stem if none) and the rest of that markdown cell."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#{1,6}\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip(), cell.source[match.end():].strip()
    return stem, ""


def _captions(nb: Any, names: Sequence[str]) -> dict[str, tuple[int, str | None]]:
    """``{name: (cell index, heading)}``: the code cell whose string literal (``f"{NOTEBOOK}_msp_{ood}"``)
    names the file, and the last sub-heading above it. Unmatched names are absent."""
    found: dict[str, tuple[int, int, str | None]] = {}
    heading = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = ([m for m in re.findall(r"^#{2,6}\s+(.+)$", cell.source, flags=re.M)] or [heading])[-1]
            continue
        for literal in re.findall(r"[\"']([^\"'\n]+)[\"']", cell.source):
            parts = re.split(r"\{[^{}]*\}", literal)
            weight = sum(len(p.strip("_")) for p in parts)
            if weight < 3:
                continue
            pattern = re.compile(".+?".join(map(re.escape, parts)))
            for name in names:
                if pattern.fullmatch(name) and (name not in found or weight > found[name][1]):
                    found[name] = (index, weight, heading)
    return {name: (index, head) for name, (index, _, head) in found.items()}


# --------------------------------------------------------------------------- tables


def _markdown_table(text: str) -> str | None:
    """A pipe table (as ``tables.export_table`` writes it) as HTML, ``**bold**`` kept; None if it is not one."""
    rows = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(rows) < 2 or not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rows[1]):
        return None
    cells = [[c.strip() for c in row.strip("|").replace("\\|", "\0").split("|")] for row in rows]
    align = ["right" if c.endswith(":") and not c.startswith(":") else "center" if c.startswith(":") and
             c.endswith(":") else "left" for c in cells[1]]

    def row(values: list[str], tag: str) -> str:
        return "<tr>" + "".join(f'<{tag} class="{a}">{_inline(v.replace(chr(0), "|"))}</{tag}>'
                                for v, a in zip(values, align)) + "</tr>"

    body = "\n".join(row(values, "td") for values in cells[2:])
    return f'<table class="data">\n<thead>{row(cells[0], "th")}</thead>\n<tbody>\n{body}\n</tbody>\n</table>'


def _csv_table(path: Path) -> str:
    """A CSV as an HTML table; columns with no value (the std of a single seed) are left out."""
    import pandas as pd

    with open(path, newline="", encoding="utf-8") as handle:
        head = list(itertools.islice(csv.reader(handle), 12))
    # pandas writes MultiIndex columns as one header row per level, then a row with only the index name
    levels = next((k for k, row in enumerate(head[1:], 1) if row and row[0] and not any(row[1:])), 0)
    if levels >= 2:
        frame, index = pd.read_csv(path, header=list(range(levels)), index_col=0), True
    else:
        frame, index = pd.read_csv(path), False
        frame.columns = ["" if str(c).startswith("Unnamed:") else c for c in frame.columns]
    frame = frame.dropna(axis=1, how="all")
    # a header level with one value (score "msp", stat "mean" of a single seed) would be a row of repeats
    constant = [lv for lv in range(frame.columns.nlevels) if frame.columns.get_level_values(lv).nunique() == 1]
    if 0 < len(constant) < frame.columns.nlevels:
        frame.columns = frame.columns.droplevel(constant)
    return frame.to_html(index=index, border=0, classes="data", na_rep="",
                         float_format=lambda x: format_number(x, 5), justify="left")


def _table(files: dict[str, Path]) -> str:
    """The table of one output: its Markdown (the paper layout) if there is one, else its CSV."""
    try:
        if ".md" in files:
            rendered = _markdown_table(files[".md"].read_text(encoding="utf-8"))
            if rendered is not None:
                return rendered
        if ".csv" in files:
            return _csv_table(files[".csv"])
    except Exception as error:  # a table that cannot be read is still linked
        return f'<p class="note">This table could not be shown here ({html.escape(type(error).__name__)}).</p>'
    return ""


# --------------------------------------------------------------------------- page parts


def _href(path: Path) -> str:
    return html.escape(quote(path.name))


def _links(files: dict[str, Path], suffixes: Sequence[str]) -> str:
    return " · ".join(f'<a href="{_href(files[s])}">{_DOWNLOADS[s]}</a>' for s in suffixes if s in files)


def _output(name: str, files: dict[str, Path], stem: str) -> str:
    short = html.escape(name[len(stem) + 1:].replace("_", " "))
    parts = []
    if ".png" in files:
        target = files.get(".pdf", files[".png"])
        parts.append(f'<a href="{_href(target)}"><img src="{_href(files[".png"])}" alt="{short}"></a>')
    table = _table(files) if set(files) & set(TABLE_SUFFIXES) else ""
    if table:
        parts.append(f'<div class="scroll">{table}</div>')
    kind = "figure" if set(files) & set(FIGURE_SUFFIXES) else "table"
    caption = f'<span class="file">{html.escape(name)}</span> {_links(files, (*FIGURE_SUFFIXES, *TABLE_SUFFIXES))}'
    return f'<figure class="{kind}">\n{"".join(parts)}\n<figcaption>{caption}</figcaption>\n</figure>'


def _without_widgets(nb: Any) -> Any:
    """``nb`` with each widget output replaced by a note: a static page cannot run an explorer (and
    nbconvert would load a widget renderer from the internet to draw it as it was)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if _WIDGET_MIME in output.get("data", {}):
                output["data"] = {"text/html": _WIDGET_NOTE}
    return nb


_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.IGNORECASE)


def _export_notebook(path: Path) -> Path | None:
    """``<stem>.html`` next to the executed notebook (nbconvert's lab template); None if that fails."""
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(_without_widgets(nbformat.read(path, as_version=4)))
        # nbconvert's template loads require.js and MathJax from a CDN: drop them so that the page opens
        # offline without errors (the notebooks' text has no TeX; their widgets are replaced above).
        body = _EXTERNAL_SCRIPT.sub("", body)
        return atomic_write_bytes(path.with_suffix(".html"), body.encode("utf-8"))
    except Exception as error:  # the page is still written, without the link
        warnings.warn(f"lnlab.report: could not export {path.name} to HTML ({type(error).__name__}: {error})",
                      stacklevel=3)
        return None


def _section(folder: Path, path: Path, nb: Any, stems: Sequence[str]) -> str:
    stem = path.stem
    title, intro = _title_and_intro(nb, stem)
    parameters = _parameters(nb)
    recipe = "not given (the notebook has no profile parameter)" if "profile" not in parameters else \
        _recipe(parameters) if _uses(nb, "profile") else \
        f"not used by this notebook (the suite ran with profile {parameters['profile']})"
    facts = [("Recipe", recipe)] + [(label, _resolved(key, parameters)) for key, label in
                                    (("seeds", "Seeds"), ("taus", "τ"), ("sweep_taus", "τ sweep"))
                                    if key in parameters]
    exported = _export_notebook(path)
    opened = " · ".join(link for link in (
        f'<a href="{_href(exported)}">read it as a web page</a>' if exported else "",
        f'<a href="{_href(path)}">download the .ipynb</a>') if link)
    failed = '<p class="note">This notebook stopped with an error: the executed notebook shows where.</p>' \
        if nb.metadata.get("papermill", {}).get("exception") else ""
    outputs = _outputs(folder, stem, stems)
    captions = _captions(nb, list(outputs))
    order = sorted(outputs, key=lambda n: (captions.get(n, (len(nb.cells), None))[0], n))
    items, last = [], object()
    for name in order:
        heading = captions[name][1] if name in captions else "More outputs" if captions else None
        if heading != last and heading is not None:
            items.append(f"<h3>{_inline(heading)}</h3>")
        last = heading
        items.append(_output(name, outputs[name], stem))
    if not items:
        items.append('<p class="note">This notebook wrote no figure or table.</p>')
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(repr(v))}</code></td></tr>"
                   for k, v in parameters.items())
    facts_html = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    return f"""<section class="notebook" id="{html.escape(quote(stem))}">
<h2>{_inline(title)}</h2>
<dl class="facts">{facts_html}</dl>
{failed}
<div class="intro">{_markdown(intro)}</div>
<p class="open">Executed notebook, with its code and all outputs: {opened}</p>
<details class="params"><summary>All parameters of this run</summary>
<table class="data">{rows}</table></details>
{chr(10).join(items)}
</section>"""


def _run_date(notebooks: Sequence[tuple[Path, Any]]) -> str:
    """When papermill finished the last notebook (UTC), else now."""
    ends = [nb.metadata.get("papermill", {}).get("end_time") for _, nb in notebooks]
    try:
        when = max(datetime.datetime.fromisoformat(str(e)) for e in ends if e)
    except (ValueError, TypeError):  # none recorded, unreadable, or naive and aware times mixed
        when = datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _header(notebooks: Sequence[tuple[Path, Any]]) -> str:
    profiles = list(dict.fromkeys(str(_parameters(nb).get("profile")) for _, nb in notebooks))
    named = ", ".join(f"<strong>{html.escape(p)}</strong>" for p in profiles)
    return (f"<p class=\"lead\"><strong>lnlab</strong> shows why neural networks are overconfident (cross-entropy "
            "keeps growing the logits' norm, so the softmax is sure of itself even far from the training data) and "
            "how LogitNorm fixes it (Wei et al., <em>Mitigating Neural Network Overconfidence with Logit "
            "Normalization</em>, ICML 2022, arXiv 2205.09310). This page shows every figure and table its notebooks "
            "wrote, one section per notebook.</p>\n"
            f"<p class=\"made\">Notebooks executed on {_run_date(notebooks)} with papermill "
            f"(<code>lnlab figures</code>), profile{'s' if len(profiles) > 1 else ''} {named}, lnlab "
            f"{html.escape(__version__)}. Click a figure for its PDF; the links under a table give its CSV, "
            "Markdown and LaTeX files.</p>")


def _toc(notebooks: Sequence[tuple[Path, Any]]) -> str:
    entries = "".join(f'<li><a href="#{html.escape(quote(path.stem))}">{_inline(_title_and_intro(nb, path.stem)[0])}'
                      "</a></li>" for path, nb in notebooks)
    return f'<nav><ol>{entries}</ol></nav>'


_STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d8dee4; --soft: #f6f8fa; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.55;
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 1080px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 32px; padding-bottom: 8px; }
h1 { font-size: 1.9rem; margin: 0 0 12px; }
h2 { font-size: 1.45rem; margin: 0 0 10px; line-height: 1.3; }
h3 { font-size: 1.1rem; margin: 28px 0 8px; }
a { color: var(--accent); }
code { font: 0.88em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--soft);
  padding: 1px 4px; border-radius: 4px; }
.lead { font-size: 1.08rem; max-width: 80ch; }
.made, .open, figcaption, .note { color: var(--muted); font-size: 0.92rem; }
nav ol { padding-left: 22px; margin: 16px 0 0; }
nav li { margin: 2px 0; }
section.notebook { border-top: 1px solid var(--line); padding: 28px 0 12px; margin-top: 24px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 14px;
  background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; font-size: 0.95rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
.intro p, .intro li { max-width: 72ch; }
.intro { font-size: 0.97rem; }
.note { border-left: 3px solid #d4a72c; padding-left: 10px; }
details.params { margin: 8px 0 4px; font-size: 0.92rem; }
details.params summary { cursor: pointer; color: var(--muted); }
figure { margin: 12px 0 24px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { margin-top: 6px; }
.file { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85rem; margin-right: 8px; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table.data { border-collapse: collapse; font-size: 0.86rem; font-variant-numeric: tabular-nums; width: 100%; }
table.data th, table.data td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
table.data td { white-space: nowrap; }
table.data thead th { vertical-align: bottom; }
table.data thead th { background: var(--soft); position: sticky; top: 0; }
table.data tbody tr:nth-child(even) { background: #fbfcfd; }
table.data .right { text-align: right; }
table.data .center { text-align: center; }
details.params table.data { width: auto; margin-top: 6px; }
details.params table.data td { white-space: normal; }
footer { color: var(--muted); font-size: 0.88rem; border-top: 1px solid var(--line); margin-top: 32px;
  padding-top: 12px; padding-bottom: 40px; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lnlab: the notebook suite's figures and tables</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>lnlab: overconfidence and LogitNorm, the figures</h1>
{header}
{toc}
</header>
<main>
{sections}
</main>
<footer>Made by <code>lnlab.report</code> (lnlab {version}). Rebuild this page from the files here with
<code>python -m lnlab.report FOLDER</code>; rerun the notebooks with <code>lnlab figures --profile ci</code>.</footer>
</body>
</html>
"""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lnlab.report FOLDER [NOTEBOOK ...]``: rebuild ``FOLDER/index.html``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m lnlab.report FOLDER [NOTEBOOK ...]\n"
              "  writes FOLDER/index.html from the executed notebooks and figures `lnlab figures` left there")
        return 0 if args else 2
    try:
        path = write_index(args[0], args[1:] or None)
    except (ValueError, FileNotFoundError) as error:
        print(f"lnlab.report: error: {error}", file=sys.stderr)
        return 2
    print(f"[lnlab report] {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
