"""A real browser: JupyterLab on localhost, the notebooks run in headless Chromium, the widgets clicked.

The tests start JupyterLab on a free port in a scratch copy of notebooks/ and drive it with Playwright for Python
in Debian's Chromium (``executable_path``; Playwright never downloads a browser here):

- the quickstart: a click on the node of module ``linear2`` writes ``^linear2$`` and recolours the node;
- notebook 02 (ResNet-50) and 03 (the encoder), each run top to bottom and then driven as a user would: grouping,
  find, clicks, undo, redo, export (with its download);
- a 2,000-node graph (``examples.layer_stack(nodes=2000)``), clicked.

**No kernel traceback.** An exception in a widget callback never reaches the notebook's outputs: the kernel sends
it to the browser as an ``error`` message on the kernel's websocket, and JupyterLab shows it only in its Log
Console. :class:`KernelMessages` reads every frame the page receives on the kernel's websocket and keeps the
``error`` messages (and any stderr stream carrying a traceback); every test asserts there are none.
``test_a_raising_widget_callback_is_caught`` proves the check can fail: a callback that raises on purpose (a
:class:`~mixprec_explorer.errors.MixprecError`) must be counted, while the notebook's outputs stay clean.

**Click speed** is measured in the page: from ``mousedown`` on a node to the start of the frame that paints its SVG
point's new fill (a MutationObserver on the plot, then ``requestAnimationFrame``), the median of several clicks, against the same for a bare plotly FigureWidget of
as many points whose click handler recolours the clicked point (plotly's own widget, no explorer), shown after the
explorer's widget in the same page and kernel, the clicks alternating. The ratio holds on any machine: the issue's
targets (ResNet-50's grouped view in notebook 02 <= 1.5x, 2,000 nodes <= 2x) are asserted with
MIXPREC_CLICK_TARGETS=assert, which CI sets; every run asserts :data:`CLICK_RATIO_BOUND`. Each click's time is split
from the kernel websocket's frames (:func:`_split`): the page's share, the kernel's (by its own clock), the wire's
and the browser's render. The figures go to test-artifacts/browser_timings.json.

It saves screenshots to test-artifacts/ (and the quickstart's to assets/quickstart_widget.png on request), with
the server log and, on failure, a screenshot of the failing page.

Environment: MIXPREC_CHROMIUM (default /usr/bin/chromium); MIXPREC_UPDATE_ASSETS=1 also refreshes assets/;
MIXPREC_CLICK_TARGETS=assert asserts the issue's click ratios.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
TIMINGS = ARTIFACTS / "browser_timings.json"
LAYOUT = ARTIFACTS / "browser_layout.json"  #: the first views as Chromium drew them (_check_first_view)
#: the issue's targets: the explorer's click (mousedown to the node's new colour, median) over a bare plotly
#: FigureWidget's in the same page and kernel; asserted with MIXPREC_CLICK_TARGETS=assert (CI)
CLICK_RATIO_TARGET = {"resnet50": 1.5, "nodes2000": 2.0}
#: the ratio every run must stay under, on any machine (a full redraw on every click measured 2-10x)
CLICK_RATIO_BOUND = 3.0
#: the encoder's click has no bare twin: a regression bound in ms, far below a full redraw on every click
CLICK_BOUND_MS = {"encoder": 250.0}
CLICKS = 7  #: timed clicks per graph (the median is kept)

# No dialogs or toasts in the way: no news prompt, no update check. Every cell laid out, in view or not: with
# JupyterLab's default ("contentVisibility") a plotly widget rendered while scrolled out of view may stay undrawn.
LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
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



# ---- the kernel's messages, as the page receives them --------------------------------------------------------------
def _parse_frame(payload: Any) -> dict[str, Any] | None:
    """A kernel websocket frame: JupyterLab's binary protocol (v1.kernel.websocket.jupyter.org: a count, offsets,
    then channel, header, parent header, metadata, content, buffers) or the JSON one. None if neither."""
    try:
        if isinstance(payload, str):
            msg = json.loads(payload)
            return {"channel": msg.get("channel"), "header": msg.get("header") or {},
                    "parent": msg.get("parent_header") or {}, "content": msg.get("content") or {}}
        data = bytes(payload)
        count = struct.unpack_from("<Q", data, 0)[0]
        offsets = [struct.unpack_from("<Q", data, 8 * (i + 1))[0] for i in range(count)]
        parts = [data[offsets[i]: offsets[i + 1] if i + 1 < count else len(data)] for i in range(count)]
        return {"channel": parts[0].decode(), "header": json.loads(parts[1]), "parent": json.loads(parts[2]),
                "content": json.loads(parts[4])}
    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
        return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class KernelMessages:
    """Every message the page receives on a kernel's websocket; ``errors`` are those JupyterLab's Log Console counts:
    ``error`` messages (a traceback from a widget callback, or a failing cell) and stderr streams with a traceback.

    The kernel's own start-up chatter on stderr ("No such comm target registered: jupyter.widget.control", sent
    while the page opens before ipywidgets is imported) carries no traceback and is not counted.
    """

    def __init__(self, page) -> None:
        self.frames = 0
        self.errors: list[str] = []
        page.on("websocket", self._attach)

    def _attach(self, ws) -> None:
        if "/api/kernels/" in ws.url:
            ws.on("framereceived", self._received)

    def _received(self, payload: Any) -> None:
        msg = _parse_frame(payload)
        if msg is None:
            return
        self.frames += 1
        kind, content = msg["header"].get("msg_type"), msg["content"]
        if kind == "error":
            trace = _ANSI.sub("", "\n".join(content.get("traceback") or []))
            self.errors.append(f"{content.get('ename')}: {content.get('evalue')} (while handling "
                               f"{msg['parent'].get('msg_type')})\n{trace[-1500:]}")
        elif kind == "stream" and content.get("name") == "stderr" and "Traceback" in content.get("text", ""):
            self.errors.append(f"stderr (while handling {msg['parent'].get('msg_type')}):\n"
                               f"{content['text'][-1500:]}")

    def assert_none(self, what: str) -> None:
        assert self.frames > 0, "no kernel message was seen: the websocket hook is not attached"
        assert not self.errors, (f"{len(self.errors)} kernel traceback(s) during {what} (JupyterLab's Log Console "
                                 "shows them; the notebook does not):\n" + "\n---\n".join(self.errors))


# ---- timing a click in the page -------------------------------------------------------------------------------------
#: installed before JupyterLab's scripts: every frame on a kernel's websocket, sent or received, summarised with the
#: page's clock while a click is armed (``window.__mxWire.on``), so that a click's time can be split
_WIRE_HOOK_JS = r"""
(() => {
  const wire = window.__mxWire = {on: false, events: []};
  const text = (bytes) => new TextDecoder().decode(bytes);
  const parse = (data) => {
    try {
      let channel = null, header, parent, content;
      if (typeof data === 'string') {
        const m = JSON.parse(data);
        channel = m.channel; header = m.header || {}; parent = m.parent_header || {}; content = m.content || {};
      } else if (data instanceof ArrayBuffer) {
        const view = new DataView(data), n = Number(view.getBigUint64(0, true)), at = [];
        for (let i = 0; i < n; i++) at.push(Number(view.getBigUint64(8 * (i + 1), true)));
        const part = (i) => text(new Uint8Array(data, at[i], (i + 1 < n ? at[i + 1] : data.byteLength) - at[i]));
        channel = part(0); header = JSON.parse(part(1)); parent = JSON.parse(part(2)); content = JSON.parse(part(4));
      } else return null;
      const state = (content.data && content.data.state) || {};
      const points = state._js2py_pointsCallback;
      return {channel, type: header.msg_type, id: header.msg_id, date: header.date, parent: parent.msg_id,
              comm: content.comm_id || null, method: content.data && content.data.method, keys: Object.keys(state),
              event: points && points.event_type, status: content.execution_state};
    } catch (e) { return null; }
  };
  const Native = window.WebSocket;
  class Watched extends Native {
    constructor(...args) {
      super(...args);
      if (!String(args[0]).includes('/api/kernels/')) return;
      this.addEventListener('message', (e) => {
        if (!wire.on) return;
        const t = performance.now(), m = parse(e.data);
        if (m) wire.events.push({dir: 'in', t, ...m});
      });
    }
    send(data) {
      if (wire.on && String(this.url).includes('/api/kernels/')) {
        const t = performance.now(), m = parse(data);
        if (m) wire.events.push({dir: 'out', t, ...m});
      }
      return super.send(data);
    }
  }
  window.WebSocket = Watched;
})();
"""

_ARM_CLICK_JS = r"""
([graph, trace, point]) => {
  // record mousedown, the moment the point's SVG path gets another fill (plotly may replace the path), and the start
  // of the frame that paints it (t1: what a user sees)
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  const fillOf = () => {
    for (const group of gd.querySelectorAll('.scatterlayer .trace')) {
      const cd = group.__data__;
      if (!cd || !cd[0] || !cd[0].trace || cd[0].trace.index !== trace) continue;
      for (const path of group.querySelectorAll('.points path'))
        if (path.__data__ && path.__data__.i === point) return path.style.fill;
    }
    return null;
  };
  const before = fillOf();
  const probe = {t0: null, tClick: null, tFill: null, t1: null, before: before, after: null};
  window.__mixprecClick = probe;
  if (window.__mxWire) { window.__mxWire.events = []; window.__mxWire.on = true; }
  document.addEventListener('mousedown', () => { probe.t0 = performance.now(); }, {capture: true, once: true});
  if (gd.on && !gd.__mxClickWatched) {  // plotly.js's own click event: the page's share of the time ends there
    gd.__mxClickWatched = true;
    gd.on('plotly_click', () => { if (window.__mixprecClick && window.__mixprecClick.tClick === null)
      window.__mixprecClick.tClick = performance.now(); });
  }
  const observer = new MutationObserver(() => {
    const fill = fillOf();
    if (fill !== null && fill !== before) {
      probe.tFill = performance.now(); probe.after = fill; observer.disconnect();
      requestAnimationFrame(() => { probe.t1 = performance.now(); });
    }
  });
  observer.observe(gd, {attributes: true, childList: true, subtree: true, attributeFilter: ['style', 'd', 'class']});
  return before;
}
"""

_DISARM_JS = r"""
() => { const w = window.__mxWire; if (!w) return []; w.on = false; const e = w.events; w.events = []; return e; }
"""


def _kernel_s(date: str | None) -> float | None:
    """A kernel message's ``header.date`` (ISO 8601, microseconds) in seconds."""
    if not date:
        return None
    from datetime import datetime

    return datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp()


def _split(probe: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, float | None]:
    """Where one click's time went, in ms: ``page`` (mousedown to the click message leaving the page, plotly.js
    included), ``kernel`` (the kernel's clock, from taking the click to sending the figure's update), ``wire``
    (the rest of the round trip: server and websocket both ways), ``render`` (the update's arrival to the new fill
    in the page), ``frame`` (the new fill to the start of the frame that paints it), and ``after`` (the kernel's work
    after the figure's update: panels, controls), with ``messages``: how many messages the click's handling sent
    before the figure's update. ``total`` runs from mousedown to that frame."""
    out: dict[str, float | None] = {"total": probe["t1"] - probe["t0"], "page": None, "kernel": None, "wire": None,
                                    "render": None, "frame": probe["t1"] - probe["tFill"], "after": None,
                                    "messages": None}
    sent = next((e for e in events if e["dir"] == "out" and e.get("event") == "plotly_click"), None)
    if sent is None:
        return out
    out["page"] = sent["t"] - probe["t0"]
    mine = [e for e in events if e["dir"] == "in" and e.get("parent") == sent["id"]]
    busy = next((e for e in mine if e.get("status") == "busy"), None)
    idle = next((e for e in mine if e.get("status") == "idle"), None)
    update = next((e for e in mine if e.get("type") == "comm_msg" and e.get("method") in ("update", "echo_update")
                   and any(k.startswith("_py2js_") for k in e.get("keys") or [])), None)
    if busy is None or update is None:
        return out
    kernel_start, kernel_update = _kernel_s(busy["date"]), _kernel_s(update["date"])
    if kernel_start is not None and kernel_update is not None:
        out["kernel"] = 1000 * (kernel_update - kernel_start)
        out["wire"] = (update["t"] - sent["t"]) - out["kernel"]
        if idle is not None and _kernel_s(idle["date"]) is not None:
            out["after"] = 1000 * (_kernel_s(idle["date"]) - kernel_update)
    out["render"] = probe["tFill"] - update["t"]
    early = [e for e in mine if e.get("type") == "comm_msg" and e["t"] < update["t"]]
    out["messages"] = len(early)
    return out


def _click_once(page, key: list[int]) -> tuple[tuple[str, str], dict[str, float | None]]:
    """One click on point ``key`` as a user makes it (hover first); its fills before and after, and its time's
    split (:func:`_split`)."""
    state = _wait(lambda: page.evaluate(_POINT_STATE_JS, key), 30, "the node's SVG point", page)
    page.mouse.move(state["x"], state["y"])
    page.wait_for_timeout(300)  # plotly registers the hover before the click, as for a user
    page.evaluate(_ARM_CLICK_JS, key)
    page.mouse.click(state["x"], state["y"])
    probe = _wait(lambda: page.evaluate("() => window.__mixprecClick.t1 !== null && window.__mixprecClick"),
                  CLICK_EFFECT_S, "the clicked node's new colour", page, 0.02)
    page.wait_for_timeout(700)  # let the kernel settle (echoes, panels) before the next click
    events = page.evaluate(_DISARM_JS)
    return (probe["before"], probe["after"]), _split(probe, events)


def _timed_clicks(page, key: list[int], clicks: int = CLICKS, excluded: str = "FP32") -> list[float]:
    """ms from mousedown to the new fill of point ``key``, for ``clicks`` clicks (each one toggles the node);
    the colours are checked against plotly.js's own (:func:`_check_colours`)."""
    page.locator(".js-plotly-plot").nth(key[0]).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    fills, splits = zip(*(_click_once(page, key) for _ in range(clicks)))
    _check_colours(page, key, list(fills), excluded)
    return [s["total"] for s in splits]


_GRAPH_POINTS_JS = r"""
([graph]) => {
  // the node trace's keys (customdata) as drawn: "module:..." for a collapsed group
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  if (!gd || !gd._fullData) return null;
  const nodes = gd._fullData.find((t) => t.name === 'nodes');
  return nodes ? Array.from(nodes.customdata || []).map(String) : null;
}
"""


_KEY_POINT_JS = r"""
([graph, key]) => {
  // [graph, trace, point] of the node trace's point whose key (customdata) is ``key``
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  const nodes = gd && (gd._fullData || []).find((t) => t.name === 'nodes');
  const i = nodes ? Array.from(nodes.customdata || []).map(String).indexOf(key) : -1;
  return i < 0 ? null : [graph, nodes.index, i];
}
"""


def _point_of_key(page, key: str, graph: int = 0) -> list[int]:
    """The point that draws node (or group) ``key`` exactly."""
    return _wait(lambda: page.evaluate(_KEY_POINT_JS, [graph, key]), 60, f"the point of {key}", page)


def _point_of(page, module: str, graph: int = 0) -> list[int]:
    found = _wait(lambda: [f for f in page.evaluate(_FIND_POINT_JS, [module]) if f["graph"] == graph], 60,
                  f"a node of {module}", page)
    return [found[0]["graph"], found[0]["trace"], found[0]["point"]]


_LEGEND_FILLS_JS = r"""
([graph]) => {
  // the fill of each legend entry's swatch, as plotly.js drew it, by the entry's trace name
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  const fills = {};
  for (const item of gd.querySelectorAll('.legend .traces')) {
    const d = item.__data__;
    const point = Array.isArray(d && d[0]) ? d[0][0] : d && d[0];
    const path = item.querySelector('.legendpoints path');
    if (point && point.trace && path) fills[point.trace.name] = path.style.fill;
  }
  return fills;
}
"""


_DRAWN_JS = r"""
([graph]) => {
  // the screen boxes plotly.js drew: each node (or group) marker, each label's text, and the plot area
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  if (!gd || !gd._fullData) return null;
  const layer = (name) => {
    const t = gd._fullData.find((d) => d.name === name);
    return t ? gd.querySelector('.trace' + t.uid) : null;
  };
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const nodes = layer('nodes'), labels = layer('labels');
  const bg = gd.querySelector('.bglayer .bg') || gd.querySelector('.draglayer .nsewdrag');
  return {
    points: nodes ? Array.from(nodes.querySelectorAll('path.point')).map(box) : [],
    labels: labels ? Array.from(labels.querySelectorAll('.textpoint text'))
        .filter((e) => e.textContent).map((e) => ({text: e.textContent, box: box(e)})) : [],
    plot: bg ? box(bg) : null,
  };
}
"""


def _check_first_view(page, name: str) -> dict:
    """The first view as Chromium drew it: every node or group labelled, no two labels overlapping (by more than a
    pixel either way), every marker inside the plot area (the whole model on one screen). Kept in
    test-artifacts/browser_layout.json."""
    drawn = _wait(lambda: page.evaluate(_DRAWN_JS, [0]), 30, "the drawn first view", page)
    labels, points, plot = drawn["labels"], drawn["points"], drawn["plot"]
    overlapping = [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1:]
                   if min(a["box"][2], b["box"][2]) - max(a["box"][0], b["box"][0]) > 1
                   and min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1]) > 1]
    outside = [k for k, p in enumerate(points) if p[0] < plot[0] - 1 or p[2] > plot[2] + 1
               or p[1] < plot[1] - 1 or p[3] > plot[3] + 1]
    found = {"points": len(points), "labels": len(labels), "overlapping_labels": len(overlapping),
             "points_outside_plot": len(outside), "plot_px": [round(plot[2] - plot[0]), round(plot[3] - plot[1])]}
    _keep(LAYOUT, name, found)
    print(f"{name}: first view as drawn {found}")
    assert points and len(labels) == len(points), f"{name}: {len(points)} markers but {len(labels)} labels"
    assert not overlapping, f"{name}: labels overlap in the browser: {overlapping[:5]}"
    assert not outside, f"{name}: {len(outside)} of {len(points)} markers outside the plot area"
    return found


_SCROLL_STATE_JS = r"""
([graph]) => {
  // the notebook's scroll offset and the plot's axis ranges
  const gd = document.querySelectorAll('.js-plotly-plot')[graph];
  let el = gd, scroller = null;
  while (el && !scroller) {
    el = el.parentElement;
    if (el && el.scrollHeight > el.clientHeight + 10 && getComputedStyle(el).overflowY !== 'visible') scroller = el;
  }
  return {top: scroller ? scroller.scrollTop : window.scrollY,
          x: gd._fullLayout.xaxis.range.slice(), y: gd._fullLayout.yaxis.range.slice()};
}
"""


def _check_wheel_scrolls_the_page(page, graph: int = 0) -> None:
    """The mouse wheel over the graph scrolls the notebook and leaves the graph's zoom alone (zoom is a choice)."""
    plot = page.locator(".js-plotly-plot").nth(graph)
    plot.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box = plot.bounding_box()
    before = page.evaluate(_SCROLL_STATE_JS, [graph])
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 300)
    page.wait_for_timeout(600)
    after = page.evaluate(_SCROLL_STATE_JS, [graph])
    assert after["top"] > before["top"], f"the wheel over the graph did not scroll the page: {before} -> {after}"
    assert (after["x"], after["y"]) == (before["x"], before["y"]), "the wheel zoomed the graph"


def _check_colours(page, key: list[int], fills: list[tuple[str, str]], excluded: str = "FP32") -> None:
    """The widget recolours a clicked point in place (widget/_sync.py): its colours must be plotly.js's own.

    Each click toggles the node, so the second click brings back the fill plotly.js drew at first, and the first
    one (the node now excluded) the fill of the legend's ``excluded`` entry.
    """
    assert all(after != before for before, after in fills), fills
    assert all(fills[k][0] == fills[k - 1][1] for k in range(1, len(fills))), fills
    if len(fills) > 1:
        assert fills[1][1] == fills[0][0], f"toggled back, the point is not plotly's own colour: {fills[:2]}"
    legend = page.evaluate(_LEGEND_FILLS_JS, [key[0]])
    assert fills[0][1] == legend.get(excluded), f"excluded, the point is not the legend's {excluded}: {legend}"


#: the bare round trip beside each graph: a plotly FigureWidget of as many points, whose click handler recolours the
#: clicked point (plotly's own widget, no explorer); ``n`` is the explorer graph's point count in that kernel
_BARE_CELL = """
import plotly.graph_objects as go

n = len(view.app.node_trace.x)
columns = max(1, min(n, 50))
bare = go.FigureWidget(  # a grid with room around every marker, so that a click lands on the point aimed at
    go.Scatter(x=[i % columns for i in range(n)], y=[i // columns for i in range(n)], mode="markers", name="bare",
               marker={"color": ["#1f77b4"] * n, "size": 8}),
    layout={"height": 200 + 12 * (n // columns), "width": 1000, "title": {"text": f"bare FigureWidget, {n} points"}})


def recolour(trace, points, state):
    if points.point_inds:
        i = points.point_inds[0]
        colours = list(trace.marker.color)
        colours[i] = "#d62728" if colours[i] == "#1f77b4" else "#1f77b4"
        trace.marker.color = colours


bare.data[0].on_click(recolour)
bare
"""

_BARE_POINT_JS = r"""
() => {
  // [graph, trace, point] of the middle point of the bare FigureWidget's trace
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  for (let g = 0; g < plots.length; g++) {
    const t = (plots[g]._fullData || []).find((d) => d.name === 'bare');
    if (t) return [g, t.index, Math.floor(t.x.length / 2)];
  }
  return null;
}
"""


def _with_bare(lab: Lab, notebook: str) -> str:
    """``notebook`` in the lab's scratch folder (which ends with ``view``, the explorer's widget) with the bare
    widget after it; its name is kept (the widget names its export after it)."""
    path = lab.root / notebook
    book = json.loads(path.read_text(encoding="utf-8"))
    book["cells"].append({"cell_type": "code", "execution_count": None, "id": "bare-widget", "metadata": {},
                          "outputs": [], "source": _BARE_CELL})
    path.write_text(json.dumps(book), encoding="utf-8")
    return notebook


def _click_ratio(page, name: str, key: list[int], clicks: int = CLICKS, excluded: str = "FP32") -> dict[str, Any]:
    """The explorer's click on point ``key`` against the bare widget's, in the same page and kernel, clicks
    alternating so that both meet the same load; the explorer's colours are checked (:func:`_check_colours`).
    Recorded in test-artifacts/browser_timings.json with the split of each median."""
    bare_key = _wait(lambda: page.evaluate(_BARE_POINT_JS), 60, "the bare widget", page)
    runs: dict[str, list[dict[str, float | None]]] = {"explorer": [], "bare": []}
    fills = []
    for _ in range(clicks):
        for which, at in (("bare", bare_key), ("explorer", key)):
            page.locator(".js-plotly-plot").nth(at[0]).scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            fill, split = _click_once(page, at)
            runs[which].append(split)
            if which == "explorer":
                fills.append(fill)
    _check_colours(page, key, fills, excluded)
    medians = {which: statistics.median(s["total"] for s in splits) for which, splits in runs.items()}
    ratio = medians["explorer"] / medians["bare"]

    def part(splits: list[dict[str, float | None]]) -> dict[str, float | None]:
        return {k: (round(statistics.median(v), 1) if (v := [s[k] for s in splits if s[k] is not None]) else None)
                for k in splits[0]}

    found = {"ratio": round(ratio, 2), "explorer_ms": round(medians["explorer"], 1),
             "bare_ms": round(medians["bare"], 1), "target_ratio": CLICK_RATIO_TARGET.get(name),
             "explorer_clicks_ms": [round(s["total"], 1) for s in runs["explorer"]],
             "bare_clicks_ms": [round(s["total"], 1) for s in runs["bare"]],
             "explorer_split_ms": part(runs["explorer"]), "bare_split_ms": part(runs["bare"]),
             "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    _keep(TIMINGS, name, found)
    print(f"{name}: explorer click {found['explorer_ms']} ms, bare {found['bare_ms']} ms: {ratio:.2f}x; "
          f"split (median ms) explorer {found['explorer_split_ms']}, bare {found['bare_split_ms']}")
    return found


def _check_ratio(name: str, found: dict[str, Any]) -> None:
    """The explorer's click against the bare round trip: within the regression bound on any machine, within the
    issue's target where MIXPREC_CLICK_TARGETS=assert (CI)."""
    assert found["ratio"] <= CLICK_RATIO_BOUND, f"{name}: explorer click {found['ratio']}x the bare widget's ({found})"
    if os.environ.get("MIXPREC_CLICK_TARGETS", "") == "assert":
        assert found["ratio"] <= CLICK_RATIO_TARGET[name], \
            f"{name}: explorer click {found['ratio']}x the bare widget's > target {CLICK_RATIO_TARGET[name]}x ({found})"


def _keep(path: Path, name: str, value: dict) -> None:
    """Set ``name`` in the JSON artifact ``path`` (test-artifacts/), keeping the other entries."""
    ARTIFACTS.mkdir(exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def _record(name: str, times: list[float]) -> float:
    """Keep the click times in test-artifacts/browser_timings.json; return their median."""
    median = statistics.median(times)
    _keep(TIMINGS, name, {"median_ms": round(median, 1), "clicks_ms": [round(t, 1) for t in times],
                          "bound_ms": CLICK_BOUND_MS.get(name),
                          "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S")})
    print(f"{name}: click to new colour, median {median:.0f} ms of {[round(t) for t in times]}")
    return median


def _check_speed(name: str, times: list[float]) -> None:
    median = _record(name, times)
    assert median <= CLICK_BOUND_MS[name], f"{name}: median click {median:.0f} ms > bound {CLICK_BOUND_MS[name]} ms"


# ---- driving the widget's controls as a user does --------------------------------------------------------------------
class WidgetPage:
    """The output area of one widget app in the page, and what a user does there."""

    def __init__(self, page, graph: int = 0) -> None:
        self.page = page
        self.graph = graph
        self.area = page.locator(".jp-OutputArea-output").filter(has=page.locator(".js-plotly-plot")).nth(graph)

    def text(self) -> str:
        return self.page.evaluate(_WIDGET_TEXT_JS, [self.graph])

    def wait_text(self, pattern: str, what: str, timeout_s: float = 60) -> str:
        return _wait(lambda: re.search(pattern, self.text()) and self.text(), timeout_s, what, self.page)

    def button(self, label: str):
        return self.area.locator("button.jupyter-button", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))

    def control(self, kind: str, label: str):
        """The <select> or <input> of the ipywidgets control whose description is ``label``."""
        box = self.area.locator(f".widget-{kind}", has=self.page.locator("label", has_text=re.compile(
            rf"^\s*{re.escape(label)}\s*$")))
        return box.locator("select" if kind == "dropdown" else "input").first

    def points(self) -> list[str]:
        return self.page.evaluate(_GRAPH_POINTS_JS, [self.graph]) or []

    def group(self, label: str, grouped: bool) -> None:
        before = self.points()
        self.control("dropdown", "group").select_option(label=label)
        _wait(lambda: self.points() != before and any(p.startswith("module:") for p in self.points()) == grouped,
              60, f"the graph drawn with grouping '{label}'", self.page)

    def find(self, query: str) -> None:
        box = self.control("text", "find")
        box.fill(query)
        box.press("Enter")
        self.wait_text(r"node\(s\) match", f"the Find box to match {query!r}")


def _open_and_run(page, lab: Lab, notebook: str,
                  drawn: str = ".jp-OutputArea .js-plotly-plot .scatterlayer .trace .points path") -> None:
    page.goto(lab.url(notebook), wait_until="domcontentloaded", timeout=SERVER_START_S * 1000)
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    page.wait_for_timeout(500)
    dialogs = page.locator(".jp-Dialog")
    assert dialogs.count() == 0, f"a dialog blocks the notebook: {dialogs.first.inner_text()}"
    _run_all_cells(page)
    # Run All stops at a failing cell, so an error ends the wait as well as the last cell does.
    _wait(lambda: _errors_in_outputs(page) or _code_cells_done(page), RUN_ALL_S, "every cell to run", page, 0.5)
    errors = _errors_in_outputs(page)
    assert not errors, f"{notebook} did not run clean in JupyterLab:\n" + "\n---\n".join(errors)
    page.locator(drawn).first.wait_for(state="attached", timeout=120_000)


def _write_notebook(lab: Lab, name: str, *cells: str) -> str:
    book = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
                       "outputs": [], "source": source} for i, source in enumerate(cells)],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}
    (lab.root / name).write_text(json.dumps(book), encoding="utf-8")
    return name


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    """One headless Chromium for the module's tests (each test gets its own context and page)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_page(lab: Lab, browser, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh Chromium page at 1400 x 1000, with the kernel's messages watched; on failure a screenshot."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    try:
        context.add_init_script(_WIRE_HOOK_JS)
        page = context.new_page()
        page.kernel_messages = KernelMessages(page)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        failures = request.session.testsfailed
        yield page
        if request.session.testsfailed > failures:  # this test's call failed: keep what the page showed
            ARTIFACTS.mkdir(exist_ok=True)
            stem = request.node.name.replace("/", "_")
            page.screenshot(path=str(ARTIFACTS / f"{stem}_failure.png"), full_page=True)
            (ARTIFACTS / f"{stem}_console.txt").write_text("\n".join(console), encoding="utf-8")
            print("JupyterLab log tail:\n" + lab.log_tail())
    finally:
        context.close()


# ---- the tests --------------------------------------------------------------------------------------------------------
def test_quickstart_click_then_the_what_if(lab: Lab, browser_page) -> None:
    """The quickstart: a click on linear2's node excludes its module and recolours it, the details name the model's
    line. Then issue 12 in the same page: "Calibrate what-if" measures all-FP32, all-low and sensitivity once; each
    click after it shows the plan's predicted milliseconds and error and what the click changed, with no compile."""
    page = browser_page
    _open_and_run(page, lab, QUICKSTART)
    view = WidgetPage(page)
    key = _point_of(page, MODULE)
    before = _wait(lambda: page.evaluate(_POINT_STATE_JS, key), 30, "the node's SVG point", page)
    assert PATTERN not in view.text(), "the widget shows the exclusion before any click"

    times = _timed_clicks(page, key, clicks=1)
    after = page.evaluate(_POINT_STATE_JS, key)
    assert after["fill"] != before["fill"]
    view.wait_text(re.escape(PATTERN), f"the widget to show {PATTERN}")
    view.wait_text(r"source: \S*examples\.py:\d+\s+return self\.linear3", "the details to name the model's line")
    page.kernel_messages.assert_none("the quickstart")
    _record("quickstart", times)
    # at 1400 px, side panel open: the view row may wrap, but Redo never alone on its own line
    undo, redo = view.button("Undo").bounding_box(), view.button("Redo").bounding_box()
    assert abs(undo["y"] - redo["y"]) < 2 and redo["x"] > undo["x"], (undo, redo)

    page.mouse.move(5, 5)  # drop the hover label before the screenshot
    _hide_side_panels(page)
    page.locator(".js-plotly-plot").nth(key[0]).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "quickstart_widget.png"
    view.area.screenshot(path=str(shot))
    if os.environ.get("MIXPREC_UPDATE_ASSETS", "0") == "1":
        ASSET.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, ASSET)

    # the what-if, calibrated from the widget, then a click priced without a compile
    view.button("Calibrate what-if").click()
    view.wait_text(r"what-if calibrated", "the calibration to finish", timeout_s=240)
    first = view.wait_text(r"predicted [-+0-9.e]+ ms", "a predicted latency in the What if panel")
    assert "this change: " not in first, first
    page.locator(".js-plotly-plot").nth(key[0]).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    state = _wait(lambda: page.evaluate(_POINT_STATE_JS, key), 30, "the node's SVG point", page)
    page.mouse.move(state["x"], state["y"])
    page.wait_for_timeout(300)
    page.mouse.click(state["x"], state["y"])
    after = view.wait_text(r"this change: ", "the change the click made")
    change = re.search(r"What if\s*predicted [0-9.e-]+ ms, rel L2 [0-9.e-]+.*?this change: [-+\u2212\u00b1][0-9.e-]+ "
                       r"ms, [-+\u2212\u00b1][0-9.e-]+", after, re.S)
    assert change, after
    print("what-if after one click:", " ".join(change.group(0).split()))
    assert "compiling" not in after[len(first):], "a click compiles nothing"
    page.kernel_messages.assert_none("the what-if session")


def test_a_raising_widget_callback_is_caught(lab: Lab, browser_page) -> None:
    """The kernel-traceback check is not vacuous: a click callback that raises is counted, outputs stay clean."""
    page = browser_page
    name = _write_notebook(lab, "raising_callback.ipynb", """
import torch
from mixprec_explorer import Explorer, Settings
from mixprec_explorer.errors import MixprecError
from mixprec_explorer.examples import reference_autocast_model


class DeliberateError(MixprecError):
    \"\"\"Raised on purpose by the browser test: its kernel-traceback check must see it.\"\"\"


def raise_on_click(trace, points, state):
    raise DeliberateError("a widget callback raised on purpose")


ex = Explorer(*reference_autocast_model())
ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
view = ex.widget()
view.app.node_trace.on_click(raise_on_click, append=True)  # after the widget's own click handler
view
""")
    _open_and_run(page, lab, name)
    _timed_clicks(page, _point_of(page, MODULE), clicks=1)  # the widget still recolours the node
    _wait(lambda: page.kernel_messages.errors, 30, "the deliberate error on the kernel's websocket", page)
    assert any("DeliberateError" in e and "a widget callback raised on purpose" in e
               for e in page.kernel_messages.errors), page.kernel_messages.errors
    assert not _errors_in_outputs(page), "the error reached the notebook's outputs: this test would not be needed"
    with pytest.raises(AssertionError, match="kernel traceback"):
        page.kernel_messages.assert_none("a deliberately failing click")


def test_resnet50_notebook_session(lab: Lab, browser_page) -> None:
    """Notebook 02 run top to bottom (a bare FigureWidget after it), then its widget driven: clicks in the grouped
    view timed against the bare widget's, grouping, find, clicks, undo, redo, export (with the browser download),
    grouping again; not one kernel traceback."""
    page = browser_page
    _open_and_run(page, lab, _with_bare(lab, "02_resnet50.ipynb"))
    view = WidgetPage(page)
    _wait(lambda: any(p.startswith("module:") for p in view.points()), 60, "the grouped first view", page)
    _check_first_view(page, "resnet50")
    _check_wheel_scrolls_the_page(page)
    # fc (node "linear"), drawn alone beside the collapsed layers; the notebook excluded it, so a click includes it
    ratio = _click_ratio(page, "resnet50", _point_of_key(page, "linear"), excluded="FP16")
    view.group("no grouping", grouped=False)
    assert len(view.points()) >= 170
    view.find("layer1.0.conv1")
    key = _point_of(page, "layer1.0.conv1")
    times = _timed_clicks(page, key)  # seven toggles: the exclusion ends in force
    view.wait_text(r"\^layer1\\\.0\\\.conv1\$", "the exclusion in the summary")

    view.button("Undo").click()
    view.wait_text(r"Undo: .*layer1\\\.0\\\.conv1\$? included again", "the status to say what Undo did")
    view.button("Redo").click()
    view.wait_text(r"Redo: .*layer1\\\.0\\\.conv1\$? excluded", "the status to say what Redo did")

    view.button("Export").click()
    view.wait_text(r"wrote .*02_resnet50_precision\.json", "the export")
    written = lab.root / "02_resnet50_precision.json"
    assert written.is_file() and "layer1\\\\.0\\\\.conv1" in written.read_text()
    link = view.area.locator("a[download]")
    with page.expect_download() as download:
        link.click()
    got = download.value
    assert got.suggested_filename == "02_resnet50_precision.json"
    assert Path(got.path()).read_text() == written.read_text()

    view.group("modules at depth 1", grouped=True)
    page.kernel_messages.assert_none("notebook 02's session")
    _record("resnet50_ungrouped", times)
    _check_ratio("resnet50", ratio)


def test_encoder_notebook_session(lab: Lab, browser_page) -> None:
    """Notebook 03 run top to bottom, then its widget: open every layer, find, click, undo; no kernel traceback."""
    page = browser_page
    _open_and_run(page, lab, "03_transformer.ipynb")
    view = WidgetPage(page)
    _wait(lambda: view.points(), 60, "the first view", page)
    _check_first_view(page, "encoder")
    view.group("no grouping", grouped=False)
    view.find("layers.0.linear1")
    times = _timed_clicks(page, _point_of(page, "layers.0.linear1"), clicks=5)
    view.button("Undo").click()
    view.wait_text(r"Undo: ", "the status to say what Undo did")
    page.kernel_messages.assert_none("notebook 03's session")
    _check_speed("encoder", times)


def test_your_model_notebook_session(lab: Lab, browser_page) -> None:
    """Notebook 04 (a Hugging Face DistilBERT built as a user builds one, padded mask and all) run top to bottom in
    JupyterLab, then its widget: the first view drawn legibly, a click keeps the found attention's projection in
    FP32 and Undo lets it go; not one kernel traceback."""
    page = browser_page
    _open_and_run(page, lab, "04_your_model.ipynb")
    view = WidgetPage(page)
    _wait(lambda: view.points(), 60, "the first view", page)
    _check_first_view(page, "distilbert")
    view.group("no grouping", grouped=False)
    view.find("transformer.layer.1.attention.q_lin")
    _timed_clicks(page, _point_of(page, "transformer.layer.1.attention.q_lin"), clicks=1)
    view.wait_text(r"\^transformer\\\.layer\\\.1\\\.attention\\\.q_lin\$", "the exclusion in the summary")
    view.button("Undo").click()
    view.wait_text(r"Undo: .*q_lin\$? included again", "the status to say what Undo did")
    page.kernel_messages.assert_none("notebook 04's session")


def test_2000_node_graph_click_speed(lab: Lab, browser_page) -> None:
    page = browser_page
    name = _write_notebook(lab, "nodes2000.ipynb", """
import torch
from mixprec_explorer import Explorer, Settings
from mixprec_explorer.examples import layer_stack

ex = Explorer(*layer_stack(nodes=2000))
ex.settings = Settings(enable_autocast=True, autocast_low_precision_type=torch.float16)
view = ex.widget(group_by_module=None)  # every node drawn: the clicks land on nodes, not groups
print(len(view.app.node_trace.x), "points")
view
""")
    _open_and_run(page, lab, _with_bare(lab, name))
    view = WidgetPage(page)
    assert len(view.points()) >= 2000
    ratio = _click_ratio(page, "nodes2000", _point_of(page, "blocks.3.0"))
    page.kernel_messages.assert_none("the 2,000-node graph")
    _check_ratio("nodes2000", ratio)


_ENGINE_TICKS_JS = r"""
() => {
  // the engine view's y tick labels as Chromium drew them (text and screen box), and its dotted separator lines
  const gd = document.querySelector('.js-plotly-plot');
  if (!gd || !gd.querySelector('.barlayer')) return null;
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const ticks = Array.from(gd.querySelectorAll('.ytick text')).filter((e) => e.textContent)
      .map((e) => ({text: e.textContent, box: box(e)}));
  const page = (gd.querySelector('.main-svg') || gd).getBoundingClientRect();  // what is drawn, not the div
  const title = gd.querySelector('.gtitle'), axis = gd.querySelector('.xtitle');
  return {ticks, lines: gd.querySelectorAll('.shapelayer path').length, left: page.left, top: page.top,
          right: page.right,
          titles: title && axis ? [box(title), box(axis)] : null};
}
"""


def test_the_engine_view_of_a_split_graph(lab: Lab, browser_page) -> None:
    """BERT-base's 13 engines (recorded live on an H200, tests/data), in the widget's engine view as Chromium draws
    it: 24 of its 180 layers at a time, each labelled with its engine, in execution order, no two labels
    overlapping, none cut at the left edge, a line where the next engine starts, the title clear of the axis's."""
    page = browser_page
    folder = ROOT / "tests" / "data" / "trt_rtx_live" / "bert_base_b32_cast_fp16"
    name = _write_notebook(lab, "engine_split.ipynb", f"""
import plotly.graph_objects as go
from mixprec_explorer.backends.tensorrt import profile_from_dir
from mixprec_explorer.viz.engine import build_engine_figure
from mixprec_explorer.widget.measure import ENGINE_ROWS

profile = profile_from_dir({str(folder)!r}, None)  # no model here: the graph the engines came from is in the folder
go.FigureWidget(build_engine_figure(profile, height=460, window=ENGINE_ROWS))  # as the widget shows it
""")
    _open_and_run(page, lab, name, drawn=".jp-OutputArea .js-plotly-plot .barlayer .point")
    drawn = _wait(lambda: page.evaluate(_ENGINE_TICKS_JS), 30, "the engine view's labels", page)
    ticks = sorted(drawn["ticks"], key=lambda t: t["box"][1])  # top to bottom, as the user reads them
    # the first 24 of 180 layers, every one labelled (none thinned out), engines in execution order (acc_0, acc_2 ...)
    assert [int(t["text"].split()[0]) for t in ticks] == list(range(24)), [t["text"] for t in ticks]
    engines = [t["text"].split()[1] for t in ticks]
    order = [int(e.removeprefix("acc_")) for e in dict.fromkeys(engines)]
    assert order[0] == 0 and len(order) >= 2 and order == sorted(order), engines
    overlapping = [(a["text"], b["text"]) for i, a in enumerate(ticks) for b in ticks[i + 1:]
                   if min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1]) > 1]
    assert not overlapping, f"engine labels overlap: {overlapping[:3]}"
    assert min(t["box"][0] for t in ticks) >= drawn["left"] - 1, "a label is cut at the left edge"
    assert drawn["lines"] >= 1, "no line where the second engine starts"
    title, axis = drawn["titles"]
    for what, box in (("title", title), ("latency axis's title", axis)):
        assert box[1] >= drawn["top"] - 1 and box[2] <= drawn["right"] + 1, f"the {what} {box} is cut ({drawn})"
    assert title[3] <= axis[1] + 1 or axis[3] <= title[1] + 1 or title[2] <= axis[0] + 1, \
        f"the title {title} runs into the latency axis's title {axis}"
    _keep(LAYOUT, "engine_split", {"labels": len(ticks), "label_px": round(ticks[1]["box"][1] - ticks[0]["box"][1])})
    page.kernel_messages.assert_none("the engine view")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(".jp-OutputArea .js-plotly-plot").first.screenshot(path=str(ARTIFACTS / "engine_split.png"))
