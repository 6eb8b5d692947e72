"""The notebooks as a user meets them: JupyterLab in a real browser (Chromium, headless, via Playwright).

One JupyterLab server on a free localhost port with a token serves a temporary copy of the notebooks
whose ``parameters`` cells ask for the ``ci`` profile (runs: ``$LNLAB_RUNS`` if set, else a session
folder; they are trained here first, with the τ values the copy asks for). For every notebook that
shows a widget (found from its code, so new notebooks are picked up), the test opens it from the file
URL, checks that JupyterLab asked nothing (no kernel dialog, no news pop-up), runs all cells from the
Run menu, checks that no cell printed a warning or an error, then changes every control of every
explorer (sliders with the keyboard, dropdowns, toggle buttons, checkboxes) and asserts that the text
and the image both changed. It times each redraw in the page, from the control's event to the new
image being loaded (``image_ms``; ``text_ms``: to the new text, which comes first where a redraw
answers at once and draws later, as the toy explorer's retraining does), changes every control
``$LNLAB_REDRAW_REPEATS`` times in all (default 5: sliders step on, dropdowns cycle) for a p50 / p95
per control, drags each slider once to check that a drag costs one redraw, and saves a screenshot
per notebook (``<stem>.png`` at its explorers after one change of each control, ``<stem>_opened.png``
as it opens) plus ``redraw_times.json`` (every redraw with the machine's load) to the output folder
it prints (``$LNLAB_TEST_OUTPUT/browser`` if set, else pytest's temporary folder). At the end it
prints a table of p50 / p95 per control; the target is p95 ≤ 0.3 s at the ci profile on two busy
cores, and a redraw slower than ``$LNLAB_REDRAW_LIMIT_S`` (default 20 s: a retrain or a reload in a
redraw) fails the test.

Chromium: ``$LNLAB_CHROMIUM`` or ``/usr/bin/chromium`` (Debian: ``apt-get install -y chromium``);
Playwright never downloads a browser here. If the browser or the server cannot start, the test fails
and says why: it is never skipped.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from lnlab import suite
from tests_support import chromium

# What the copied notebooks' parameters cells are set to, where they have the name (besides runs_root and
# output): the ci profile, and two τ values so that τ sliders have somewhere to go (one ci run more).
TAUS = [0.04, 0.1]
PARAMETERS = {"profile": "ci", "device": "cpu", "taus": TAUS, "sweep_taus": TAUS, "seeds": [0], "progress": False}
# Runs are trained before the browser starts: cells only load them. A machine far busier than CI
# (a training job on the same cores) may need more: LNLAB_RUN_ALL_TIMEOUT_S, LNLAB_REDRAW_TIMEOUT_S.
RUN_ALL_TIMEOUT_S = float(os.environ.get("LNLAB_RUN_ALL_TIMEOUT_S", "300"))
REDRAW_TIMEOUT_S = float(os.environ.get("LNLAB_REDRAW_TIMEOUT_S", "60"))
# A redraw slower than this fails the test (a retrain or a reload in a redraw); the target on 2 busy
# cores is p95 <= 0.3 s at the ci profile, printed per control and kept in redraw_times.json, not
# asserted (shared CI cores vary).
REDRAW_LIMIT_S = float(os.environ.get("LNLAB_REDRAW_LIMIT_S", "20"))
REDRAW_TARGET_S = 0.3
REPEATS = max(1, int(os.environ.get("LNLAB_REDRAW_REPEATS", "5")))  # changes per control, for p50 / p95
WIDGET_CALL = re.compile(r"\b(widgets\.\w+|\w*_explorer|Explorer)\s*\(")


def widget_notebooks() -> list[Path]:
    """Suite notebooks whose code displays a widget: a call into ``lnlab.widgets`` or to an explorer."""
    found = []
    for path in suite.notebook_paths():
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        if WIDGET_CALL.search(code):
            found.append(path)
    return found


NOTEBOOKS = widget_notebooks()


def test_widget_notebooks_are_found():
    assert NOTEBOOKS, f"no notebook in {suite.NOTEBOOKS_DIR} calls widgets.* or an *_explorer(...)"


# --------------------------------------------------------------------------- the notebooks' copy


def set_parameters(source: str, values: dict) -> str:
    """``source`` (a parameters cell) with each ``name = ...`` it has from ``values`` given the new value.

    Comments stay; names the cell does not assign are not added (a notebook without ``sweep_taus``
    keeps working)."""
    lines = source.splitlines()
    for node in sorted(ast.parse(source).body, key=lambda n: -n.lineno):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if name not in values or node.value.lineno != node.value.end_lineno:
            continue
        line = lines[node.value.lineno - 1]
        lines[node.value.lineno - 1] = (line[:node.value.col_offset] + repr(values[name])
                                        + line[node.value.end_col_offset:])
    return "\n".join(lines)


def copy_notebooks(folder: Path, values: dict) -> None:
    folder.mkdir(parents=True)
    for path in suite.notebook_paths():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = set_parameters(cell.source, values)
        nbformat.write(nb, folder / path.name)


def test_set_parameters_keeps_comments_and_other_names():
    source = 'profile = "quick"   # the size\nruns_root = None\ntaus = [0.04]'
    out = set_parameters(source, {"profile": "ci", "taus": [0.04, 0.1], "output": "/tmp/x"})
    assert out.splitlines() == ["profile = 'ci'   # the size", "runs_root = None", "taus = [0.04, 0.1]"]


# --------------------------------------------------------------------------- server and browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _report(request, lines: list[str]) -> None:
    """Write ``lines`` to the terminal, also under ``-q`` and output capture."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        for line in lines:
            reporter.write_line(line)


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory, request) -> Path:
    base = os.environ.get("LNLAB_TEST_OUTPUT")
    folder = Path(base) / "browser" if base else tmp_path_factory.mktemp("browser")
    folder.mkdir(parents=True, exist_ok=True)
    _report(request, [f"\n[test_browser] screenshots and redraw times: {folder}"])
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over the notebooks' copy, with a first-time user's empty settings."""
    base = tmp_path_factory.mktemp("lab")
    runs = os.environ.get("LNLAB_RUNS") or str(tmp_path_factory.getbasetemp() / "ci_runs")
    values = {**PARAMETERS, "runs_root": runs, "output": str(base / "figures")}
    copy_notebooks(base / "notebooks", values)

    # Train (or load) the runs the notebooks ask for, here, so the browser only waits for cells that load them.
    suite.comparison_runs(values["profile"], taus=TAUS, device=values["device"], runs_root=runs, progress=False)

    port, token = _free_port(), secrets.token_hex(16)
    home = base / "user"  # no ~/.jupyter, no user settings or workspaces: what a new user has
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), LNLAB_RUNS=runs)
    log_path = base / "jupyterlab.log"
    log = open(log_path, "w")
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.root_dir={base / 'notebooks'}",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}"] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI containers
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=base)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode} before serving:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {url} within 120 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "log": log_path}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


# --------------------------------------------------------------------------- in the page

# Marks each explorer (a VBox with an image child) and its controls; returns what it found.
MARK_EXPLORERS = """() => {
  const boxes = [...document.querySelectorAll('.jp-OutputArea-output .widget-vbox')]
    .filter(box => box.querySelector(':scope > img.widget-image'));
  return boxes.map((box, i) => {
    box.setAttribute('data-lnlab-explorer', i);
    const title = box.querySelector(':scope > .widget-html') ? box.querySelector(':scope > .widget-html').innerText : '';
    const kinds = {'.widget-slider': 'slider', '.widget-dropdown': 'dropdown',
                   '.widget-toggle-buttons': 'toggle-buttons', '.widget-checkbox': 'checkbox',
                   '.widget-toggle-button': 'toggle-button'};
    const controls = [];
    for (const [selector, kind] of Object.entries(kinds)) {
      for (const el of box.querySelectorAll(selector)) {
        if (kind === 'toggle-button' && el.closest('.widget-toggle-buttons')) continue;  // one of a group
        const j = controls.length;
        el.setAttribute('data-lnlab-control', `${i}-${j}`);
        const label = el.querySelector('.widget-label');
        const buttons = [...el.querySelectorAll('button')].map(b => b.innerText.trim()).join(' / ');
        controls.push({id: `${i}-${j}`, kind,
                       label: (label && label.innerText.trim()) || buttons || el.innerText.trim().slice(0, 40)});
      }
    }
    return {index: i, title: title.trim(), controls};
  });
}"""

# Starts recording, for explorer i, the first control event and every later text / image change.
WATCH = """(i) => {
  const box = document.querySelector(`[data-lnlab-explorer="${i}"]`);
  const img = box.querySelector(':scope > img.widget-image');
  const texts = [...box.querySelectorAll(':scope > .widget-html')];
  const text = texts[texts.length - 1];
  if (window.__lnlabObservers) window.__lnlabObservers.forEach(o => o.disconnect());
  const rec = window.__lnlab = {t0: null, src: [], load: [], text: [],
                                before: {src: img.src, text: text.innerText}};
  if (!box.hasAttribute('data-lnlab-listening')) {  // the user's first input event starts the clock
    const start = () => { if (window.__lnlab.t0 === null) window.__lnlab.t0 = performance.now(); };
    for (const type of ['keydown', 'change', 'click', 'pointerdown']) box.addEventListener(type, start, true);
    box.setAttribute('data-lnlab-listening', '');
  }
  const onSrc = new MutationObserver(() => rec.src.push(performance.now()));
  onSrc.observe(img, {attributes: true, attributeFilter: ['src']});
  const onText = new MutationObserver(() => rec.text.push(performance.now()));
  onText.observe(text, {childList: true, subtree: true, characterData: true});
  img.onload = () => rec.load.push(performance.now());
  window.__lnlabObservers = [onSrc, onText];
  return rec.before;
}"""

CHANGED = """(i) => {
  const rec = window.__lnlab;
  return rec.t0 !== null && rec.load.length > 0 && rec.text.length > 0;
}"""

RESULT = """(i) => {
  const box = document.querySelector(`[data-lnlab-explorer="${i}"]`);
  const texts = [...box.querySelectorAll(':scope > .widget-html')];
  const rec = window.__lnlab;
  return {t0: rec.t0, src: rec.src, load: rec.load, text: rec.text, before: rec.before,
          after: {src: box.querySelector(':scope > img.widget-image').src, text: texts[texts.length - 1].innerText}};
}"""

# Every code cell ran, or Run All stopped at an error (no cell queued or running, an error shown).
CELLS_DONE = """() => {
  const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
    .map(p => p.textContent);
  if (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p))) return true;
  return !prompts.some(p => p.includes('*'))
    && !!document.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
}"""

STDERR = """() => [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(el => el.innerText.trim()).filter(Boolean)"""


def _machine_load() -> dict:
    """How busy the machine was: redraw times only compare under a similar load (CI cores are shared)."""
    start, total = time.perf_counter(), 0
    for i in range(1_000_000):  # a fixed pure-Python workload: ~50 ms on an idle laptop core
        total += i
    return {"load_1min": round(os.getloadavg()[0], 2), "cpu_probe_ms": round(1000 * (time.perf_counter() - start), 1)}


def _shutdown_kernels(lab) -> None:
    """Stop every kernel of the server (one notebook at a time keeps the 2 CPU cores for the one tested)."""
    headers = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(f"{lab['url']}/api/sessions", headers=headers)) as answer:
        sessions = json.load(answer)
    for session in sessions:
        request = urllib.request.Request(f"{lab['url']}/api/sessions/{session['id']}", headers=headers, method="DELETE")
        urllib.request.urlopen(request).close()


def _change(page, control: dict) -> str:
    """Change one control the way a user does; return what was done. A slider steps on in one direction
    (``control["direction"]``) and turns at its ends, so repeated changes reach new values."""
    element = page.locator(f"[data-lnlab-control='{control['id']}']")
    kind = control["kind"]
    if kind == "slider":
        handle = element.locator(".noUi-handle").first
        now, low, high = (handle.get_attribute(f"aria-value{end}") for end in ("now", "min", "max"))
        if now == high:
            control["direction"] = -1
        elif now == low:
            control["direction"] = 1
        key = "ArrowLeft" if control.get("direction", 1) < 0 else "ArrowRight"
        handle.focus()
        page.keyboard.press(key)
        return f"key {key}"
    if kind == "dropdown":
        select = element.locator("select")
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("s => s.selectedIndex")
        choice = (current + 1) % len(options)
        select.select_option(index=choice)
        return f"select {options[choice]!r}"
    if kind == "toggle-buttons":
        button = element.locator("button:not(.mod-active)").first
        label = button.inner_text()
        button.click()
        return f"click {label!r}"
    element.locator("input, button").first.click()
    return "click"


def _disabled(page, control: dict) -> bool:
    element = page.locator(f"[data-lnlab-control='{control['id']}']")
    return bool(element.evaluate(
        "el => el.classList.contains('mod-disabled') || !!el.querySelector('[disabled]') "
        "|| !!el.querySelector('.noUi-target[disabled]')"))


def _redraw(page, explorer: int, control: dict) -> dict:
    """Change ``control`` of ``explorer``; wait for the new text and image; return the times in ms."""
    page.evaluate(WATCH, explorer)
    action = _change(page, control)
    try:
        page.wait_for_function(CHANGED, arg=explorer, timeout=REDRAW_TIMEOUT_S * 1000, polling=20)
    except Exception:
        result = page.evaluate(RESULT, explorer)
        pytest.fail(f"{control['label']!r} ({action}): text changed {bool(result['text'])}, image changed "
                    f"{bool(result['load'])} within {REDRAW_TIMEOUT_S} s")
    page.wait_for_timeout(100)  # a second redraw, if one was queued, would start by now
    result = page.evaluate(RESULT, explorer)
    assert result["after"]["text"] != result["before"]["text"], f"{control['label']!r} ({action}): same text"
    assert result["after"]["src"] != result["before"]["src"], f"{control['label']!r} ({action}): same image"
    return {"control": control["label"], "kind": control["kind"], "action": action,
            "text_ms": round(result["text"][0] - result["t0"], 1),
            "image_ms": round(result["load"][0] - result["t0"], 1)}


def _readout(slider) -> str | None:
    readout = slider.locator(".widget-readout")
    return readout.first.inner_text() if readout.count() else None


def _drag_redraws(page, explorer: int, control: dict) -> int:
    """Drag a slider's handle over several values; return how many new images followed (1 for a drag
    that left the slider on its value: nothing to redraw)."""
    slider = page.locator(f"[data-lnlab-control='{control['id']}']")
    before = _readout(slider)
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    track, box = slider.locator(".noUi-base").first.bounding_box(), handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    room_right, room_left = track["x"] + track["width"] - x, x - track["x"]
    distance = 0.8 * (room_right if room_right > room_left else -room_left)  # far enough to pass several values
    page.evaluate(WATCH, explorer)
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(x + distance * step / 8, y)
        page.wait_for_timeout(60)
    page.mouse.up()
    page.wait_for_timeout(500)
    if before is not None and _readout(slider) == before:
        return 1  # the handle came back to its value: no change, no redraw owed
    page.wait_for_function("() => window.__lnlab.load.length > 0", timeout=REDRAW_TIMEOUT_S * 1000, polling=20)
    first = page.evaluate(RESULT, explorer)
    page.wait_for_timeout(max(1500, 3 * (first["load"][0] - first["t0"])))  # any queued redraw arrives meanwhile
    return len(page.evaluate(RESULT, explorer)["load"])


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with 5 values, p95 is the slowest: no interpolation below it)."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


def redraw_table(everything: dict) -> list[str]:
    """One line per control: redraws, p50 / p95 to the new image (and to the new text), the load average."""
    lines = [f"{'notebook':<22} {'explorer':<28} {'control':<24} {'n':>2} {'p50 ms':>7} {'p95 ms':>7} "
             f"{'text p95':>8} {'load':>10}"]
    for stem, times in everything.items():
        groups: dict[tuple, list[dict]] = {}
        for t in times:
            groups.setdefault((t["explorer"], t["control"]), []).append(t)
        for (explorer, control), rows in groups.items():
            image, text = [r["image_ms"] for r in rows], [r["text_ms"] for r in rows]
            loads = [r["load_1min"] for r in rows]
            p95 = _percentile(image, 95)
            flag = "" if p95 <= 1000 * REDRAW_TARGET_S else "  > target"
            lines.append(f"{stem:<22} {explorer.split(':')[0][:28]:<28} {control[:24]:<24} {len(rows):>2} "
                         f"{_percentile(image, 50):>7.0f} {p95:>7.0f} {_percentile(text, 95):>8.0f} "
                         f"{min(loads):>4.1f}-{max(loads):<4.1f}{flag}")
    return lines


@pytest.fixture(scope="module")
def redraw_record(output_dir, request):
    """``{notebook: [redraw]}`` of this session, printed as a table at the end of the module."""
    record: dict[str, list[dict]] = {}
    yield record
    if record:
        _report(request, [f"\n[test_browser] redraw times, control -> new image (target p95 <= "
                          f"{1000 * REDRAW_TARGET_S:.0f} ms at the ci profile; load = 1-min load average):",
                          *redraw_table(record)])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_widgets_redraw_in_jupyterlab(path, browser, lab, output_dir, redraw_record):  # browser first
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(f"{lab['url']}/lab/tree/{path.name}?token={lab['token']}&reset", timeout=120_000)
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
        kernel = page.locator(".jp-NotebookPanel .jp-KernelName").first
        kernel.wait_for(timeout=60_000)
        page.wait_for_function("() => document.querySelector('.jp-NotebookPanel .jp-KernelName')"
                               ".innerText.includes('lnlab')", timeout=60_000)
        page.wait_for_timeout(2000)  # pop-ups (kernel choice, news) show within a second of opening
        dialogs = page.locator(".jp-Dialog").all_inner_texts()
        assert not dialogs, f"JupyterLab asked something on opening {path.name}: {dialogs}"
        toasts = page.locator(".Toastify__toast").all_inner_texts()
        assert not toasts, f"JupyterLab showed notifications on opening {path.name}: {toasts}"
        page.screenshot(path=str(output_dir / f"{path.stem}_opened.png"))  # what a user sees first

        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click()
        page.wait_for_function(CELLS_DONE, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=250)
        stderr = page.evaluate(STDERR)
        assert not stderr, f"{path.name}: cells printed warnings or errors:\n" + "\n---\n".join(stderr)

        explorers = page.evaluate(MARK_EXPLORERS)
        assert explorers, f"{path.name} calls a widget but no explorer (controls + image) was displayed"
        if path.stem.startswith("02"):  # the score explorer has an epoch slider (the ci runs store snapshots)
            labels = [c["label"] for e in explorers for c in e["controls"]]
            assert any("epoch" in label for label in labels), f"no epoch slider in {path.name}: {labels}"
        times = []
        for explorer in explorers:
            assert explorer["controls"], f"explorer {explorer['title']!r} has no controls"
            page.evaluate("(i) => document.querySelector(`[data-lnlab-explorer='${i}']`)"
                          ".scrollIntoView({block: 'start'})", explorer["index"])
            for repeat in range(REPEATS):
                pending, changed = list(explorer["controls"]), []
                while pending:  # a disabled control (e.g. OOD set while not on the MSP view) waits for the others
                    ready = [c for c in pending if not _disabled(page, c)]
                    if not ready and repeat > 0:  # e.g. temperature while the score is max_logit: next round
                        break
                    assert ready, f"{[c['label'] for c in pending]} stayed disabled after changing {changed}"
                    for control in ready:
                        if _disabled(page, control):  # disabled by the change just made: after the others
                            continue
                        timing = _redraw(page, explorer["index"], control)
                        times.append({"explorer": explorer["title"], "repeat": repeat, **timing, **_machine_load()})
                        changed.append(control["label"])
                        pending.remove(control)
                if repeat > 0:
                    continue
                if explorer["index"] == 0:  # each control one step from the notebook's values: what a user sees
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(output_dir / f"{path.stem}.png"))
                # One drag per slider, while every control is one step from the notebook's values (all enabled).
                # The epoch slider has only the few snapshot epochs (4 at ci): there is no drag over several
                # values to check; its keyboard steps are timed like every control's.
                for control in [c for c in explorer["controls"] if c["kind"] == "slider" and "epoch" not in c["label"]]:
                    assert not _disabled(page, control), f"{control['label']!r} is disabled: no drag to check"
                    redraws = _drag_redraws(page, explorer["index"], control)
                    assert redraws == 1, f"dragging {control['label']!r} redrew {redraws} times; one drag, one redraw"
        stderr = page.evaluate(STDERR)
        assert not stderr, f"{path.name}: redraws printed warnings or errors:\n" + "\n---\n".join(stderr)
    finally:
        page.close()
        _shutdown_kernels(lab)

    record = output_dir / "redraw_times.json"
    everything = json.loads(record.read_text()) if record.is_file() else {}
    everything[path.stem] = times
    record.write_text(json.dumps(everything, indent=1, ensure_ascii=False))
    redraw_record[path.stem] = times
    slow = [t for t in times if t["image_ms"] > REDRAW_LIMIT_S * 1000]
    print("\n".join(redraw_table({path.stem: times})))
    print(f"median {statistics.median(t['image_ms'] for t in times):.0f} ms")
    assert not slow, f"redraws slower than {REDRAW_LIMIT_S} s: {slow}"
