"""`fakedetect serve` in Debian's headless Chromium (driven by Selenium through chromedriver),
with every host but 127.0.0.1 unreachable: the page loads, asks nothing of any other origin,
shows a demo image's verdicts, neighbour thumbnails and heatmap, and a bad file's message."""
from __future__ import annotations

import json
import shutil

import pytest

from serve_server import running_server

from fakedetect.detectors import registry
from fakedetect.predict import default_detector
from fakedetect.detectors.registry import needs_noisy_views

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")


def browser():
    """Headless Chromium that can resolve no host name and reach nothing through a proxy but 127.0.0.1."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9",
                "--proxy-bypass-list=127.0.0.1", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(DRIVER))


def requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def wait_for(driver, css: str, count: int = 1, timeout: float = 300):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: len(d.find_elements("css selector", css)) >= count
                                                and d.find_elements("css selector", css))


def loaded(driver, img) -> bool:
    return driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)


def test_page_scores_a_dropped_image_and_explains_a_bad_one(trained_project, tmp_path):
    demo = sorted((trained_project / "data" / "demo" / "test").rglob("*.png"))[0]
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"this is a text file, not an image\n" * 10)
    with running_server(trained_project) as url:
        driver = browser()
        try:
            driver.get(url)
            wait_for(driver, "#run")
            driver.find_element("id", "pick-files").send_keys(str(demo))
            card = wait_for(driver, ".card")[0]
            text = card.text
            assert demo.name in text and "Verdict:" in text
            saved = registry.saved(trained_project / "models" / "detectors")
            best = default_detector(trained_project)[0]
            shown = [n for n in saved if not needs_noisy_views(n, saved)]
            for label in ("at the calibrated threshold", "at the 1% false-alarm point", "at the 5% false-alarm point",
                          f"{best} (", "[predict's default]", *(f"{n} (" for n in shown)):
                assert label in text, label
            assert text.count("[predict's default]") == 1 and f"by the {best} (" in text
            thumbs = card.find_elements("css selector", ".neighbours img")
            assert len(thumbs) == 5
            wait_for(driver, ".heatmap img")
            driver.implicitly_wait(0)
            from selenium.webdriver.support.ui import WebDriverWait
            WebDriverWait(driver, 30).until(lambda d: all(loaded(d, i) for i in thumbs + card.find_elements(
                "css selector", ".heatmap img")))
            assert "cosine" in card.find_element("css selector", ".neighbours").text
            assert len(driver.find_elements("css selector", "#table tbody tr")) == 1

            driver.find_element("id", "pick-files").send_keys(str(bad))
            error = wait_for(driver, ".card.error")[0]
            assert "holiday.png" in error.text and "not an image" in error.text and "415" in error.text
            assert driver.find_elements("css selector", ".card")[1].text == text  # the first result stays
            origin = url.rstrip("/")
            foreign = [u for u in requested_urls(driver) if not u.startswith((origin, "data:", "blob:"))]
            assert foreign == []
        finally:
            driver.quit()
