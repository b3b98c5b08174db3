"""Load a page in headless Chromium and report what its console said: used to test the HTML report.

Only the standard library is used. The browser is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: commands on file descriptor 3, replies on 4, each message a JSON text ended
by a NUL byte), which reports every console call with its level, uncaught exceptions and failed resource
loads, and takes the screenshot in the same session.

Install the browser on Debian or Ubuntu with ``apt-get install -y chromium``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Flags for a quiet, reproducible, offline headless run inside a container.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)


MISSING = "Chromium is not installed (apt-get install -y chromium), or set BACKCHECK_CHROMIUM."


def find_chromium() -> str | None:
    """The path of a Chromium executable (``$BACKCHECK_CHROMIUM``, chromium, chromium-browser), or None."""
    explicit = os.environ.get("BACKCHECK_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else shutil.which(explicit)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def command(executable: str, user_data_dir: str, *extra: str) -> list[str]:
    """The command line of a headless run with its own throw-away profile directory."""
    return [executable, *FLAGS, f"--user-data-dir={user_data_dir}", *extra]


@dataclass
class ConsoleEntry:
    """One thing the page reported: a console call, an uncaught exception or a log entry (failed loads)."""

    source: str  # 'console' | 'exception' | 'log'
    level: str  # 'log', 'info', 'warning', 'error', ...
    text: str

    def __str__(self) -> str:
        return f"[{self.source}:{self.level}] {self.text}"


@dataclass
class PageLoad:
    """What happened when a page was loaded."""

    url: str
    loaded: bool
    entries: list[ConsoleEntry] = field(default_factory=list)
    screenshot: bytes | None = None

    @property
    def errors(self) -> list[ConsoleEntry]:
        """Uncaught exceptions and entries at level 'error' (console.error, failed resource loads)."""
        return [e for e in self.entries if e.source == "exception" or e.level == "error"]


class BrowserError(RuntimeError):
    """Chromium is missing, failed to start, or did not answer in time."""


#: Puts the pipe ends on descriptors 3 and 4, where Chromium expects them, then becomes Chromium.
_TRAMPOLINE = (
    "import os, sys\n"
    "r, w = int(sys.argv[1]), int(sys.argv[2])\n"
    "os.dup2(r, 3)\n"
    "os.dup2(w, 4)\n"
    "os.close(r)\n"
    "os.close(w)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def _high_pipe() -> tuple[int, int]:
    """A pipe on descriptors 10 and above, so that moving its ends to 3 and 4 cannot clobber one of them."""
    r, w = os.pipe()
    hr, hw = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(r)
    os.close(w)
    return hr, hw


class _Pipe:
    """The DevTools protocol over a pair of pipes."""

    def __init__(self, to_browser: int, from_browser: int, timeout: float) -> None:
        self.w, self.r, self.timeout = to_browser, from_browser, timeout
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self.w, data):]
        return self.next_id

    def _read_one(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer over the DevTools pipe in time.")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 16)
                if not chunk:
                    raise BrowserError("Chromium closed the DevTools pipe (did it crash?).")
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read_one(deadline)
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise BrowserError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return True
        try:
            while True:
                msg = self._read_one(deadline)
                self.events.append(msg)
                if msg.get("method") == method:
                    return True
        except BrowserError:
            return False

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds`` (late console messages)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_one(deadline))
        except BrowserError:
            pass


def _entries(events: list[dict[str, Any]]) -> list[ConsoleEntry]:
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append(ConsoleEntry("console", str(p.get("type", "log")), text))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text", "exception")
            out.append(ConsoleEntry("exception", "error", str(text)))
        elif method == "Log.entryAdded":
            entry = p.get("entry", {})
            text = entry.get("text", "") + (f" ({entry['url']})" if entry.get("url") else "")
            out.append(ConsoleEntry("log", str(entry.get("level", "info")), text))
    return out


def load_page(path: str | os.PathLike[str], *, screenshot: bool = True, size: tuple[int, int] = (1200, 2000),
              timeout: float = 60.0, settle: float = 0.3) -> PageLoad:
    """Load a local HTML file headless; collect console messages, exceptions, failed loads and a screenshot.

    Parameters
    ----------
    path : path-like
        The HTML file.
    screenshot : bool
        Capture a PNG of the top ``size`` pixels (``PageLoad.screenshot``).
    size : (width, height)
        The viewport.
    timeout : float
        Seconds to wait for the browser at each step.
    settle : float
        Seconds to keep listening after the load event, for late console messages.
    """
    exe = find_chromium()
    if exe is None:
        raise BrowserError(MISSING)
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="backcheck-chromium-") as profile:
        cmd_r, cmd_w = _high_pipe()  # we write commands, the browser reads them on its fd 3
        ev_r, ev_w = _high_pipe()  # the browser writes on its fd 4, we read
        argv = command(exe, profile, "--remote-debugging-pipe", f"--window-size={size[0]},{size[1]}",
                       "about:blank")
        log = open(Path(profile) / "chromium.log", "wb")  # closed in the finally clause below
        proc = subprocess.Popen([sys.executable, "-c", _TRAMPOLINE, str(cmd_r), str(ev_w), *argv],
                                pass_fds=(cmd_r, ev_w), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(cmd_r)
        os.close(ev_w)
        pipe = _Pipe(cmd_w, ev_r, timeout)
        try:
            if proc.poll() is not None:
                raise BrowserError(f"Chromium exited at once with status {proc.returncode}.")
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1],
                                                             "deviceScaleFactor": 1, "mobile": False},
                      session=session)
            pipe.events.clear()
            pipe.call("Page.navigate", {"url": url}, session=session)
            loaded = pipe.wait_for("Page.loadEventFired", timeout)
            pipe.drain(settle)
            shot = None
            if screenshot and loaded:
                data = pipe.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
                shot = base64.b64decode(data)
            entries = _entries(pipe.events)
            try:
                pipe.send("Browser.close")
            except OSError:
                pass
        except (BrowserError, OSError) as exc:
            log.flush()
            tail = (Path(profile) / "chromium.log").read_bytes()[-3000:].decode(errors="replace")
            raise BrowserError(f"{exc}\nChromium's output ends with:\n{tail}") from exc
        finally:
            os.close(cmd_w)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(ev_r)
            log.close()
    return PageLoad(url, loaded, entries, shot)

