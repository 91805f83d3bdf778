"""A real browser: JupyterLab on localhost, the quickstart notebook run in headless Chromium, one node clicked.

The test starts JupyterLab on a free port in a scratch copy of notebooks/, opens 01_quickstart.ipynb in Debian's
Chromium driven by Playwright for Python (``executable_path``; Playwright never downloads a browser here), runs
every cell, clicks the graph node of module ``linear2`` and checks that the widget shows the exclusion
``^linear2$`` and that the node's colour changed. It saves a screenshot to test-artifacts/ (and to
assets/quickstart_widget.png on request), with the server log and, on failure, a screenshot of the failing page.

Environment: MIXPREC_CHROMIUM (default /usr/bin/chromium); MIXPREC_UPDATE_ASSETS=1 also refreshes assets/
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
ASSET = ROOT / "assets" / "quickstart_widget.png"
QUICKSTART = "01_quickstart.ipynb"
CHROMIUM = os.environ.get("MIXPREC_CHROMIUM", "/usr/bin/chromium")
# Seen working on these machines; without the networking flags Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
MODULE = "linear2"  #: the module whose node is clicked
PATTERN = "^linear2$"  #: the exclusion a click on it must write
SERVER_START_S = 120
RUN_ALL_S = 300  #: kernel start + every cell of the quickstart
CLICK_EFFECT_S = 60

# No dialogs or toasts in the way: no news prompt, no update check.
LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost: never through a proxy


def _request(url: str, method: str = "GET", timeout: float = 5.0) -> int:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with _DIRECT.open(req, timeout=timeout) as response:
        return response.status


class Lab:
    """A JupyterLab server of our own on 127.0.0.1, serving a scratch folder."""

    def __init__(self, root: Path, scratch: Path, log_path: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        settings_dir = scratch / "lab-user-settings"
        for rel, value in LAB_USER_SETTINGS.items():
            target = settings_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(value), encoding="utf-8")
        (scratch / "lab-workspaces").mkdir(exist_ok=True)
        env = dict(os.environ)
        env["JUPYTER_CONFIG_DIR"] = str(scratch / "jupyter-config")  # no user config leaks in
        env["JUPYTER_RUNTIME_DIR"] = str(scratch / "jupyter-runtime")
        env["JUPYTER_PREFER_ENV_PATH"] = "1"  # the python3 kernel of this environment
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",
            f"--LabApp.user_settings_dir={settings_dir}",
            f"--LabApp.workspaces_dir={scratch / 'lab-workspaces'}",
        ]
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(cmd, cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if _request(f"{self.base}/api/status?token={self.token}") == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{self.log_tail()}")

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?reset&token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            try:  # graceful: the server shuts its kernels down too
                _request(f"{self.base}/api/shutdown?token={self.token}", method="POST")
                self.process.wait(timeout=20)
            except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        self._log.close()


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; in CI (CI=true), where .ci/run installs everything, fail instead."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the browser test must run in CI, but {reason}")
    pytest.skip(reason)


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"Debian chromium is not at {CHROMIUM} (`apt-get install chromium`; make test does it as root)")
    for module, extra in (("playwright", "Playwright for Python"), ("jupyterlab", "JupyterLab"),
                          ("anywidget", "anywidget (plotly's FigureWidget needs it)")):
        if not _has_module(module):
            _unavailable(f"{extra} is not installed: pip install -e '.[test]'")
    scratch = tmp_path_factory.mktemp("lab")
    root = scratch / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    ARTIFACTS.mkdir(exist_ok=True)
    server = Lab(root, scratch, ARTIFACTS / "jupyterlab.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# ---- in-page helpers (plotly keeps its data on the graph div; d3 binds each SVG point to its calcdata) ----
_FIND_POINT_JS = r"""
([module]) => {
  const word = new RegExp('(^|[^A-Za-z0-9_.])' + module.replace(/\./g, '\\.') + '($|[^A-Za-z0-9_.])');
  const text = (v) => (v === null || v === undefined) ? '' :
      (typeof v === 'object' ? JSON.stringify(v) : String(v));
  const at = (arr, i) => Array.isArray(arr) || ArrayBuffer.isView(arr) ? arr[i] : undefined;
  const found = [];
  document.querySelectorAll('.js-plotly-plot').forEach((gd, g) => {
    (gd._fullData || []).forEach((trace) => {
      if (!trace.visible || !String(trace.mode || '').includes('markers')) return;
      const n = (trace.x || []).length;
      for (let i = 0; i < n; i++) {
        const fields = [at(trace.customdata, i), at(trace.hovertext, i), at(trace.text, i), at(trace.ids, i)];
        if (fields.some((f) => word.test(text(f)))) found.push({graph: g, trace: trace.index, point: i});
      }
    });
  });
  return found;
}
"""

_POINT_STATE_JS = r"""
([graph, trace, point]) => {
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  if (!gd) return null;
  for (const group of gd.querySelectorAll('.scatterlayer .trace')) {
    const cd = group.__data__;
    if (!cd || !cd[0] || !cd[0].trace || cd[0].trace.index !== trace) continue;
    for (const path of group.querySelectorAll('.points path')) {
      if (!path.__data__ || path.__data__.i !== point) continue;
      const box = path.getBoundingClientRect();
      const style = getComputedStyle(path);
      return {x: box.x + box.width / 2, y: box.y + box.height / 2, w: box.width, h: box.height,
              fill: path.style.fill || style.fill, stroke: path.style.stroke || style.stroke};
    }
  }
  return null;
}
"""

_WIDGET_TEXT_JS = r"""
([graph]) => {
  // the text of the output area that holds the graph: widget labels, HTML, and the values of inputs
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  if (!gd) return '';
  const area = gd.closest('.jp-OutputArea') || gd.closest('.jp-Cell') || document.body;
  const parts = [area.innerText || ''];
  area.querySelectorAll('input, textarea').forEach((el) => parts.push(el.value || ''));
  area.querySelectorAll('select option').forEach((el) => parts.push(el.textContent || ''));
  return parts.join('\n');
}
"""


def _code_cells_done(page) -> bool:
    """True when every code cell shows an execution count and none is queued or running."""
    prompts = page.eval_on_selector_all(
        ".jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent.trim())")
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)


def _wait(predicate, timeout_s: float, what: str, page=None, interval_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        if page is not None:
            page.wait_for_timeout(int(interval_s * 1000))
        else:
            time.sleep(interval_s)


def _cells_started(page) -> bool:
    """True once any code cell is queued, running or done (its prompt is no longer empty)."""
    prompts = page.eval_on_selector_all(
        ".jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent.trim())")
    return any(p not in ("", "[ ]:") for p in prompts)


def _run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, through the menu bar as a user would, once the kernel is idle.

    On a loaded machine the first menu click can land before the notebook is ready and do nothing; the
    action is repeated (up to ``attempts`` times) until a cell has started.
    """
    _wait(lambda: page.get_by_text(re.compile(r"\| Idle")).count() > 0, 180, "the kernel to be idle", page, 0.5)
    for attempt in range(attempts):
        page.keyboard.press("Escape")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            _wait(lambda: _cells_started(page), 60, "a cell to start", page, 0.5)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


def _hide_side_panels(page) -> None:
    """Collapse the left panel (click its current tab, as a user would), for a screenshot of the notebook only."""
    try:
        current = page.locator("#jp-left-stack, .jp-SideBar.jp-mod-left").locator(".lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.first.click()
    except Exception:  # a cosmetic step: never the reason the test fails
        pass


def _errors_in_outputs(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.innerText.slice(0, 800))")


def test_quickstart_click_excludes_the_node_and_recolours_it(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    timings: dict[str, float] = {}
    start = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            try:
                page.goto(lab.url(QUICKSTART), wait_until="domcontentloaded", timeout=SERVER_START_S * 1000)
                page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
                # No kernel-selection dialog: the notebook carries its kernelspec. Fail loudly if one shows.
                page.wait_for_timeout(500)
                dialogs = page.locator(".jp-Dialog")
                assert dialogs.count() == 0, f"a dialog blocks the notebook: {dialogs.first.inner_text()}"
                timings["open"] = time.perf_counter() - start

                _run_all_cells(page)
                # Run All stops at a failing cell, so an error ends the wait as well as the last cell does.
                _wait(lambda: _errors_in_outputs(page) or _code_cells_done(page), RUN_ALL_S,
                      "every cell to run", page, 0.5)
                timings["run_all"] = time.perf_counter() - start
                errors = _errors_in_outputs(page)
                assert not errors, "the notebook did not run clean in JupyterLab:\n" + "\n---\n".join(errors)

                graph = page.locator(".jp-OutputArea .js-plotly-plot .scatterlayer .trace .points path").first
                graph.wait_for(state="attached", timeout=120_000)
                found = _wait(lambda: page.evaluate(_FIND_POINT_JS, [MODULE]), 30, f"a node of {MODULE}", page)
                assert len({(f["graph"], f["trace"]) for f in found}) >= 1
                target = found[0]
                key = [target["graph"], target["trace"], target["point"]]
                before = _wait(lambda: page.evaluate(_POINT_STATE_JS, key), 30, "the node's SVG point", page)
                text_before = page.evaluate(_WIDGET_TEXT_JS, [target["graph"]])
                assert PATTERN not in text_before, "the widget shows the exclusion before any click"

                page.locator(".js-plotly-plot").nth(target["graph"]).scroll_into_view_if_needed()
                before = page.evaluate(_POINT_STATE_JS, key)
                page.mouse.move(before["x"], before["y"])
                page.wait_for_timeout(300)  # let plotly register the hover before the click
                page.mouse.click(before["x"], before["y"])
                timings["click"] = time.perf_counter() - start

                def changed():
                    state = page.evaluate(_POINT_STATE_JS, key)
                    shown = PATTERN in page.evaluate(_WIDGET_TEXT_JS, [target["graph"]])
                    return (state, shown) if state and state["fill"] != before["fill"] and shown else None

                after, _ = _wait(changed, CLICK_EFFECT_S, f"the click to exclude {PATTERN} and recolour the node",
                                 page, 0.25)
                timings["recoloured"] = time.perf_counter() - start
                page.mouse.move(5, 5)  # drop the hover label before the screenshot
                _hide_side_panels(page)
                page.locator(".js-plotly-plot").nth(target["graph"]).scroll_into_view_if_needed()
                page.wait_for_timeout(500)
                shot = ARTIFACTS / "quickstart_widget.png"
                output = page.locator(".jp-OutputArea").filter(has=page.locator(".js-plotly-plot")).last
                output.screenshot(path=str(shot))
                page.screenshot(path=str(ARTIFACTS / "quickstart_page.png"), full_page=False)
                if os.environ.get("MIXPREC_UPDATE_ASSETS", "0") == "1":
                    ASSET.parent.mkdir(exist_ok=True)
                    shutil.copyfile(shot, ASSET)
            except BaseException:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "browser_failure.png"), full_page=True)
                (ARTIFACTS / "browser_console.txt").write_text("\n".join(console), encoding="utf-8")
                print("JupyterLab log tail:\n" + lab.log_tail())
                raise
        finally:
            browser.close()

    assert after["fill"] != before["fill"]
    print(f"fill {before['fill']} -> {after['fill']}; timings (s since start): "
          + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
