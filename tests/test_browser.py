"""The search page in a real browser: headless Chromium, driven through chromedriver.

`mathmatch serve` runs on 127.0.0.1 over the sample index (uvicorn, in a thread); the browser
types a question with a formula, waits for the results, checks that the answers' MathML is laid
out (every ``<math>`` has a non-zero box: the browser rendered it, MathML Core), then types a
question the bank already holds and waits for the duplicate banner.  A screenshot of each goes
to ``build/`` (the README shows the first).  Needs Debian's ``chromium`` and ``chromium-driver``
(``.ci/run`` installs them when missing); skipped where they are not installed.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs chromium and chromedriver (apt install chromium "
                                       "chromium-driver)")

CUPCAKES = ("For a birthday party on Saturday, Paul needs 63 cupcakes. He has 8 chocolate "
            "cupcakes and 40 toffee cupcakes already. How many more cupcakes does Paul have to "
            "buy?")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(sample_index, tmp_path_factory):
    """``mathmatch serve`` of a copy of the sample index (with question vectors), on a free
    port of 127.0.0.1; yields its URL."""
    import uvicorn

    from index.manifest import read_manifest
    from mathmatch.server import ServeConfig, create_app
    from retriever.questions import QuestionIndex

    manifest = read_manifest(sample_index)
    if manifest.get("questions", {}).get("corpus_checksum") != manifest["store"]["checksum"]:
        QuestionIndex.open(sample_index, device="cpu").close()
    served = tmp_path_factory.mktemp("browser") / "idx"
    shutil.copytree(sample_index, served)
    port = _free_port()
    config = uvicorn.Config(create_app(served, ServeConfig(port=port)), host="127.0.0.1",
                            port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _ask(browser, question: str) -> None:
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys(question)
    browser.find_element(By.ID, "go").click()


def _wait(browser, what, seconds: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, poll_frequency=0.2).until(lambda d: what(d))


def test_the_page_renders_answers_as_mathml_and_flags_a_duplicate(server, browser):
    from selenium.webdriver.common.by import By

    build = ROOT / "build"
    build.mkdir(exist_ok=True)
    browser.get(server + "/")
    _ask(browser, "Solve $x^2 - 5x + 6 = 0$ for $x$.")
    # The live preview shows the formula as MathML, converted on the server.
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#preview math"))
    hits = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .hit"))
    assert len(hits) == 10
    boxes = browser.execute_script(
        "return [...document.querySelectorAll('#results .hit math')].map(m => {"
        "  const r = m.getBoundingClientRect(); return [r.width, r.height]; });")
    assert len(boxes) >= 5, "the answers hold no <math> elements"
    assert all(w > 0 and h > 0 for w, h in boxes), boxes
    # Chromium lays MathML out itself: a fraction's numerator sits above its denominator.
    stacked = browser.execute_script(
        "const f = document.querySelector('#results .hit mfrac');"
        "if (!f) return null;"
        "const [a, b] = f.children; return a.getBoundingClientRect().bottom <= "
        "b.getBoundingClientRect().top + 1;")
    assert stacked in (None, True)
    browser.save_screenshot(str(build / "serve-search.png"))

    _ask(browser, CUPCAKES)
    banner = browser.find_element(By.ID, "duplicate-banner")
    _wait(browser, lambda d: banner.is_displayed() and "gsm8k-test-00817" in banner.text)
    assert "duplicate" in banner.text.lower()
    _wait(browser, lambda d: "gsm8k-test-00817" in
          d.find_elements(By.CSS_SELECTOR, "#results .hit")[0].text)
    browser.save_screenshot(str(build / "serve-duplicate.png"))
