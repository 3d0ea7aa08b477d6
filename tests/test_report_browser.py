"""End to end: open the generated report in headless Chromium and check what a person would see.

Driven through the Chrome DevTools Protocol over Chromium's --remote-debugging-port, with a minimal
WebSocket client written here on the standard library (no new dependency). Per page: no console error,
no uncaught exception, no request leaving file:// (the site must work offline), every image decoded
(naturalWidth > 0), text from results with markup shown as text (only the report's own script runs),
and a screenshot saved. On the throughput page a real mouse click on a header sorts the table and
typing in the filter box hides rows.

Skipped where Chromium is not installed (Debian package `chromium`; CI installs it).
Set SEQBENCH_SCREENSHOT_DIR to keep the screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.report.plots import MAX_SERIES
from harness.results import write_rows
from tests.test_report_synthetic import HOSTILE, all_rows, throughput_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    "--remote-debugging-port=0",  # Chromium picks a free port and writes it to DevToolsActivePort
    "--window-size=1280,900",
]


class WebSocket:
    """Just enough of RFC 6455 for CDP: a client that sends masked text frames and reads whole messages."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        assert url.startswith("ws://"), url
        host_port, _, path = url[len("ws://") :].partition("/")
        host, _, port = host_port.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        head, _, self.buffer = response.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head.decode(errors='replace')}")

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 2**16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", self._read(8))
            payload = self._read(length)  # server frames are not masked
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode == 0x9:
                self._send_frame(0xA, payload)  # pong
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Browser:
    """Headless Chromium with a fresh profile, and one page driven over CDP."""

    def __init__(self, profile_dir: Path) -> None:
        self.process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: renderers and zygotes end with it
        )
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 40
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._kill()
                stderr = self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.stderr else ""
                raise RuntimeError(f"Chromium did not start its DevTools endpoint: {stderr}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, params: dict | None = None, timeout_s: float = 30.0) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self.ws.receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)
        raise TimeoutError(f"no answer to {method} within {timeout_s} s")

    def wait_for_event(self, name: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == name:
                    self.events.remove(event)
                    return event
            self.events.append(json.loads(self.ws.receive()))
        raise TimeoutError(f"no {name} within {timeout_s} s")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_for_event("Page.loadEventFired")

    def click(self, selector: str) -> None:
        """A real mouse click (press + release) at the element's centre, as a person would."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1}
            )

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, failed loads, dialogs and requests leaving file://."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                found.append(f"failed load: {params.get('errorText')}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog opened: {params.get('message')}")
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("file://", "data:")):
                    found.append(f"request leaves the file system: {url}")
        return found

    def screenshot(self, path: Path) -> None:
        width, height = self.evaluate(
            "[document.documentElement.scrollWidth, Math.min(document.documentElement.scrollHeight, 6000)]"
        )
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout_s=5)
        except (OSError, RuntimeError, TimeoutError, ConnectionError):
            pass
        self.ws.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill()

    def _kill(self) -> None:
        """End Chromium and every process it started (its own session's process group)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic results written as Parquet and turned into a site by `seqbench report`, as a user would."""
    root = tmp_path_factory.mktemp("browser")
    by_suite: dict[str, list[dict]] = {}
    for row in all_rows(root / "traces", run_id="run-b"):
        by_suite.setdefault(row["suite"], []).append(row)
    for rows in by_suite.values():
        write_rows(rows, root / "results", "run-b")
    write_rows(throughput_rows("run-a", scale=0.8, seed=1), root / "baseline", "run-a")
    arguments = ["report", str(root / "results"), "-o", str(root / "site"), "--baseline", str(root / "baseline")]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    return Path(result.output.strip()).parent


@pytest.fixture(scope="module")
def browser():
    with tempfile.TemporaryDirectory(prefix="seqbench-chromium-") as profile:
        chromium = Browser(Path(profile))
        try:
            yield chromium
        finally:
            chromium.close()


def _screenshot_dir(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("SEQBENCH_SCREENSHOT_DIR", tmp_path))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


PAGES = ["index", "throughput", "memory", "profile", "recall", "check", "compare"]
PAGES_WITHOUT_PLOTS = {"index", "check"}


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_clean_with_every_image(page: str, site: Path, browser: Browser, tmp_path: Path) -> None:
    browser.open((site / f"{page}.html").as_uri())
    images = browser.evaluate(
        "Array.from(document.images).map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth}))"
    )
    if page not in PAGES_WITHOUT_PLOTS:
        assert images, f"{page}.html shows no plot"
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    # Text from results with markup is shown as text: the page's only script is the report's own.
    assert browser.evaluate("document.scripts.length") == 1
    if page in ("index", "throughput"):
        assert HOSTILE in browser.evaluate("document.body.innerText")
    links = browser.evaluate("Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href'))")
    assert set(links) == {f"{p}.html" for p in PAGES}
    # No plot carries more series on one axis than a reader can tell apart (each figure says its count).
    series = browser.evaluate("Array.from(document.querySelectorAll('figure')).map(f => Number(f.dataset.series))")
    assert all(0 <= count <= MAX_SERIES for count in series), series
    if page == "index":  # the overview opens on the comparison matrix, a row per family
        assert browser.evaluate("document.querySelectorAll('#matrix tbody tr').length") >= 2
        assert browser.evaluate("document.querySelector('main h2').textContent") == "Which mixer, for what"
    browser.screenshot(_screenshot_dir(tmp_path) / f"{page}.png")
    assert (_screenshot_dir(tmp_path) / f"{page}.png").stat().st_size > 10_000
    assert browser.problems() == []


def test_table_sorts_on_click_and_filters(site: Path, browser: Browser, tmp_path: Path) -> None:
    browser.open((site / "throughput.html").as_uri())
    table = "#throughput-rows"
    headers = browser.evaluate(f"Array.from(document.querySelectorAll('{table} th')).map(h => h.dataset.column)")
    column = headers.index("median_ms") + 1  # nth-child counts from 1
    read_column = (
        f"Array.from(document.querySelectorAll('{table} tbody tr td:nth-child({column})')).map(c => c.dataset.v)"
    )

    def numbers() -> list[float]:
        return [float(v) for v in browser.evaluate(read_column) if v != ""]

    unsorted = numbers()
    assert unsorted != sorted(unsorted), "the synthetic rows should not start out sorted by median_ms"
    browser.click(f"{table} th:nth-child({column})")
    assert numbers() == sorted(unsorted)
    assert browser.evaluate(f"document.querySelector('{table} th:nth-child({column})').ariaSort") == "ascending"
    missing_last = browser.evaluate(read_column)
    assert missing_last[-1] == "", "rows without a median (failed jobs) sort last"
    browser.click(f"{table} th:nth-child({column})")
    assert numbers() == sorted(unsorted, reverse=True)

    total = browser.evaluate(f"document.querySelectorAll('{table} tbody tr').length")
    browser.evaluate("document.querySelector('input[data-table=\"throughput-rows\"]').focus()")
    browser.call("Input.insertText", {"text": "mamba2 decode"})
    visible = browser.evaluate(
        f"Array.from(document.querySelectorAll('{table} tbody tr')).filter(r => !r.hidden).map(r => r.textContent)"
    )
    assert 0 < len(visible) < total
    assert all("mamba2" in text and "decode" in text for text in visible)
    assert browser.evaluate("document.getElementById('throughput-rows-count').textContent") == (
        f"{len(visible)} of {total} rows"
    )
    browser.screenshot(_screenshot_dir(tmp_path) / "throughput-sorted-filtered.png")
    assert browser.problems() == []


def test_a_number_of_the_matrix_opens_the_rows_behind_it(site: Path, browser: Browser) -> None:
    browser.open((site / "index.html").as_uri())
    href = browser.evaluate("document.querySelector('#matrix td a').getAttribute('href')")
    page, _, words = href.partition("#filter=")
    browser.click("#matrix td a")
    browser.wait_for_event("Page.loadEventFired")
    assert browser.evaluate("location.pathname").endswith("/" + page)
    table = page.removesuffix(".html") + "-rows"
    wanted = browser.evaluate(f"decodeURIComponent({json.dumps(words)})")  # the words as the link gave them
    assert browser.evaluate(f"document.querySelector('input[data-table=\"{table}\"]').value") == wanted
    visible = browser.evaluate(
        f"Array.from(document.querySelectorAll('#{table} tbody tr')).filter(r => !r.hidden).length"
    )
    assert visible >= 1
    assert visible < browser.evaluate(f"document.querySelectorAll('#{table} tbody tr').length")
    assert browser.problems() == []


def test_the_pickers_narrow_the_plots_and_the_rows(site: Path, browser: Browser) -> None:
    browser.open((site / "throughput.html").as_uri())
    modes = browser.evaluate(
        "Array.from(document.querySelectorAll('select.pick[data-facet=mode] option')).map(o => o.value)"
    )
    assert modes[0] == "" and "fwd_bwd" in modes
    browser.evaluate(
        "(() => { const s = document.querySelector('select.pick[data-facet=mode]'); s.value = 'fwd_bwd';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    shown = browser.evaluate(
        "Array.from(document.querySelectorAll('figure[data-facet-mode]')).filter(f => !f.hidden)"
        ".map(f => f.dataset.facetMode)"
    )
    assert shown and set(shown) == {"fwd_bwd"}
    column = browser.evaluate(
        "Array.from(document.querySelectorAll('#throughput-rows th')).findIndex(h => h.dataset.column === 'mode')"
    )
    visible = browser.evaluate(
        f"Array.from(document.querySelectorAll('#throughput-rows tbody tr')).filter(r => !r.hidden)"
        f".map(r => r.cells[{column}].textContent.trim())"
    )
    assert visible and set(visible) == {"fwd_bwd"}
    browser.evaluate(
        "(() => { const s = document.querySelector('select.pick[data-facet=mode]'); s.value = '';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert browser.evaluate("Array.from(document.querySelectorAll('figure')).every(f => !f.hidden)")
    assert browser.problems() == []


def test_the_checks_catch_a_broken_page(tmp_path: Path, browser: Browser) -> None:
    """Negative control: the same checks flag a console error, a broken image and a request off the machine."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!doctype html><html><body><img src="missing.png"><img src="http://127.0.0.1:9/x.png">'
        '<script>console.error("deliberate")</script></body></html>'
    )
    browser.open(page.as_uri())
    widths = browser.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert widths == [0, 0]
    problems = " | ".join(browser.problems())
    assert "console.error" in problems and "deliberate" in problems
    assert "request leaves the file system: http://127.0.0.1:9/x.png" in problems
