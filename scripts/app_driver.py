"""Start the Streamlit app on a free localhost port and drive it in headless Chromium (Selenium).

Used by the browser test (tests/e2e/test_browser.py) and by scripts/screenshots.py (README pictures).
Chromium and its driver come from Debian (`apt-get install chromium chromium-driver`); Selenium is
pointed at them, so nothing is downloaded at run time.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the dev extra: pip install -e '.[dev]')"
    if not any(shutil.which(n) for n in CHROMIUM_NAMES):
        return "no Chromium: install it with `apt-get install chromium chromium-driver` (make test does this when run as root with apt)"
    if not shutil.which("chromedriver"):
        return "no chromedriver: install it with `apt-get install chromium-driver`"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict[str, str], log_file: Path, port: int | None = None, timeout: float = 60) -> Iterator[str]:
    """`streamlit run ui/app.py` as `make run` starts it, on 127.0.0.1:`port`; yields its URL."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with open(log_file, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, timeout, log_file)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float, log_file: Path) -> None:
    """Until the Streamlit app at `url` answers its health check; fails when `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}: see {log_file}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the app did not answer on {url} within {timeout:.0f} s: see {log_file}")
        time.sleep(0.3)


class AppDriver:
    """The few gestures a person makes in the app, for headless Chromium."""

    def __init__(self, url: str, *, lang: str = "en-US", width: int = 1400, height: int = 1100) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = next(shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n))
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={width},{height}", f"--lang={lang}", "--hide-scrollbars"):
            options.add_argument(arg)
        options.add_experimental_option("prefs", {"intl.accept_languages": lang})
        self.driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        self.driver.get(url)
        self.wait_for(".st-key-ingest", timeout=60)

    # ------------------------------------------------------------------ waiting
    def wait_until(self, condition, timeout: float = 60, what: str = "the page"):
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def safe(driver):
            try:
                return condition(driver)
            except (StaleElementReferenceException, WebDriverException):
                return False

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(safe)
        except Exception:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; page text:\n{self.text()[-3000:]}") from None

    def wait_for(self, css: str, text: str = "", timeout: float = 60):
        """The first element matching `css` (that contains `text`)."""
        from selenium.webdriver.common.by import By

        def found(driver):
            for el in driver.find_elements(By.CSS_SELECTOR, css):
                if el.is_displayed() and text in el.text:
                    return el
            return False

        return self.wait_until(found, timeout, f"{css!r} containing {text!r}")

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:
            return ""

    # ------------------------------------------------------------------ gestures
    def upload(self, paths: list[Path], timeout: float = 120, during: Path | None = None) -> str:
        """Choose the files, press 'Add to knowledge base', return the upload report's text
        (with `during`, a screenshot of the progress is saved there once the first file is done)."""
        from selenium.webdriver.common.by import By

        field = self.wait_until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"] input[type="file"]'),
                                30, "the file uploader")
        field.send_keys("\n".join(str(Path(p).resolve()) for p in paths))
        self.wait_until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stFileChip"]')) == len(paths),
                        30, "the chosen files to be listed")
        button = self.wait_until(lambda d: (b := d.find_element(By.CSS_SELECTOR, ".st-key-ingest button")).is_enabled() and b,
                                 30, "the ingest button to be enabled")
        button.click()
        if during is not None:
            self.wait_until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebar"] [data-testid="stProgress"]')
                            and "✅" in self.text(), timeout, "the first file to be ingested")
            self.screenshot(during)
        return self.wait_for(".st-key-ingest_report", timeout=timeout).text

    def ask(self, question: str, timeout: float = 120) -> str:
        """Type the question in the chat box, wait for the finished answer, return its text."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        before = len(self.driver.find_elements(By.CSS_SELECTOR, '[data-testid="stChatMessage"]'))
        box = self.wait_for('[data-testid="stChatInputTextArea"]')
        box.click()
        box.send_keys(question)
        box.send_keys(Keys.ENTER)
        self.wait_until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stChatMessage"]')) >= before + 2,
                        timeout, "the answer to start")

        def finished(d):  # a final answer ends with its timing caption ("2.1 s · …", "用时 2.1 秒 · …"); a failure is an error
            last = d.find_elements(By.CSS_SELECTOR, '[data-testid="stChatMessage"]')[-1]
            timing = any(re.search(r"\d (s|秒) · ", c.text) for c in last.find_elements(By.CSS_SELECTOR, '[data-testid="stCaptionContainer"]'))
            return (timing or last.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')) and last

        return self.wait_until(finished, timeout, "the answer to finish").text

    def show_page(self, n: int = 0, timeout: float = 60):
        """Switch on the n-th 'show the page' toggle of the last answer; return the page image element."""
        from selenium.webdriver.common.by import By

        message = self.driver.find_elements(By.CSS_SELECTOR, '[data-testid="stChatMessage"]')[-1]
        toggles = message.find_elements(By.CSS_SELECTOR, '[data-testid="stCheckbox"] label')
        toggles[n].click()
        image = self.wait_until(lambda d: (imgs := d.find_elements(By.CSS_SELECTOR, '[data-testid="stChatMessage"] [data-testid="stImage"] img'))
                                and imgs[-1].get_property("naturalWidth") > 0 and imgs[-1], timeout, "the page image")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", image)
        time.sleep(0.5)
        return image

    def scroll_to_last_question(self) -> None:
        """Scroll so that the last question and the start of its answer are at the top."""
        from selenium.webdriver.common.by import By

        # twice: the app's chat container sticks to the bottom while a long answer (a refusal's closest passages)
        # is still being laid out, and takes the first scroll back
        for _ in range(2):
            messages = self.driver.find_elements(By.CSS_SELECTOR, '[data-testid="stChatMessage"]')
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", messages[-2])
            time.sleep(1.0)

    def scroll_to_bottom(self) -> None:
        self.driver.execute_script(
            "for (const el of document.querySelectorAll('[data-testid=\"stMain\"], [data-testid=\"stAppScrollToBottomContainer\"], section.main'))"
            " el.scrollTop = el.scrollHeight;")
        time.sleep(0.5)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        self.driver.quit()
