"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

No port is opened and no client library is needed: Chromium reads JSON commands, each ended by a
NUL byte, on its file descriptor 3 and writes replies and events on 4. Used by
tests/integration/test_report_html.py and tools/dev/report_html_size.py.
"""

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


def chromium_path():
    """The Chromium binary (Debian's ``chromium``; ``make chromium`` installs it)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium with a private profile, one page attached (flattened session)."""

    def __init__(self, width=1280, height=900):
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not on PATH: run `make chromium` (apt-get install -y chromium)")
        self.profile = tempfile.mkdtemp(prefix="jit-report-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        args = [
            binary,
            "--headless=new",
            "--remote-debugging-pipe",
            "--user-data-dir=" + self.profile,
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=%d,%d" % (width, height),
        ]
        if os.geteuid() == 0:
            # Chromium refuses to start as root with its sandbox on (the test machines run as root).
            args.append("--no-sandbox")

        def fds():  # the child's fd 3 reads our commands, its fd 4 carries the replies
            # Copies first: a pipe end may already be fd 3 or 4 (dup2 onto itself would keep close-on-exec).
            reads, writes = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        self.process = subprocess.Popen(  # noqa: S603 - a fixed argument list
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=fds,  # noqa: PLW1509 - dup2 only, before exec
            close_fds=False,  # would close fds 3 and 4 after preexec_fn; the others are close-on-exec anyway
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._replies = {}
        self.events = []  # every event received, in order (console messages, exceptions, requests...)
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr = []
        threading.Thread(target=lambda: self._stderr.extend(self.process.stderr), daemon=True).start()
        self.session = None
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    def _read(self):
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as stream:
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    with self._lock:
                        if "id" in message:
                            self._replies[message["id"]] = message
                        else:
                            self.events.append(message)
                        self._lock.notify_all()

    def send(self, method, timeout=60, **params):
        """A command (on the page's session once attached); its result, or RuntimeError."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise RuntimeError("%s: no reply from Chromium (%s)" % (method, b"".join(self._stderr)[-2000:].decode(errors="replace")))
                self._lock.wait(min(left, 0.5))
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError("%s: %s" % (method, reply["error"]))
        return reply.get("result", {})

    def wait_for_event(self, method, timeout=60, since=0):
        """The first event named ``method`` at index ``since`` or later of :attr:`events`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events[since:]:
                    if event.get("method") == method:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no %s event within %ss" % (method, timeout))
                self._lock.wait(min(left, 0.5))

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError("%s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def wait_until(self, expression, timeout=30):
        """Poll a JavaScript condition until it is true; RuntimeError at the deadline."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise RuntimeError("still false after %ss: %s" % (timeout, expression))
            time.sleep(0.05)

    def open(self, url):
        """Enable the domains whose events the tests check, then load ``url`` and wait for its load event."""
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(domain + ".enable")
        mark = len(self.events)
        self.send("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired", since=mark)

    def click(self, selector):
        """A real mouse click (pressed and released) at the middle of the element."""
        box = self.evaluate(
            "(function(){var e=document.querySelector(%s);e.scrollIntoView({block:'center'});var r=e.getBoundingClientRect();"
            "return [r.left+r.width/2,r.top+r.height/2];})()" % json.dumps(selector)
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_into(self, selector, text):
        """Focus the element with a click and type ``text`` as keyboard input."""
        self.click(selector)
        self.send("Input.insertText", text=text)

    def screenshot(self, path):
        """A PNG of the whole page, not just the window."""
        height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        self.send("Emulation.setDeviceMetricsOverride", width=1280, height=min(int(height), 6000), deviceScaleFactor=1, mobile=False)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as stream:
            stream.write(base64.b64decode(data))

    def problems(self):
        """Console errors and warnings, uncaught exceptions and error log entries (CSP violations included)."""
        found = []
        for event in list(self.events):
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(("exception", params["exceptionDetails"].get("text"), json.dumps(params["exceptionDetails"].get("exception", {}))[:300]))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(("console." + params["type"], json.dumps(params.get("args"))[:300]))
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(("log." + params["entry"]["level"], params["entry"].get("text")))
        return found

    def requests(self):
        """The URL of every request the page made."""
        return [event["params"]["request"]["url"] for event in list(self.events) if event.get("method") == "Network.requestWillBeSent"]

    def close(self):
        try:
            with contextlib.suppress(OSError):  # already gone
                os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        finally:
            os.close(self._to_browser)
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
