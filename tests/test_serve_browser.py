"""A real browser on ``msakit serve``: Debian's Chromium (headless, through Selenium and
/usr/bin/chromedriver) uploads a clip to a server started on a free local port, waits for the
result and checks the score, the transcript and the timeline are shown. It saves a screenshot
(``benchmarks/results/serve/browser_test.png``, not committed; ``MSAKIT_SCREENSHOT`` names
another path, ``MSAKIT_SERVE_RUN`` another run, as for the README's picture). Skipped, with the
reason, only where no browser is installed (``.ci/run`` installs one)."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

for _module in ("fastapi", "uvicorn", "multipart", "av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[1]
MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             Path("shared/data/media"))

pytestmark = pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                                reason=f"no browser: {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium, chromium-driver) are not installed")


def start_server(run: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``msakit serve RUN --port 0``; the URL it prints once its workers are warm."""
    process = subprocess.Popen([sys.executable, "-m", "msakit.cli", "serve", str(run), "--port", "0"], cwd=REPO,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stderr], [], [], 1.0)
        if ready:
            line = process.stderr.readline()
            lines.append(line)
            found = re.search(r" at (http://127\.0\.0\.1:\d+/)", line)
            if found:
                return process, found.group(1)
    process.kill()
    log.write_text("".join(lines))
    raise AssertionError(f"msakit serve did not start: {''.join(lines)[-2000:]}")


def test_a_browser_uploads_a_clip_and_sees_score_transcript_and_timeline(text_only_run, tmp_path):
    selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert selenium
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    run = Path(os.environ.get("MSAKIT_SERVE_RUN") or text_only_run)
    if (MEDIA / "grid" / "pwij3p.mpg").is_file():
        clip, words = MEDIA / "grid" / "pwij3p.mpg", ("white", "three")
    else:
        from msakit.extract.media import voice, write_clip

        clip, words = write_clip(tmp_path / "clip.mp4", seconds=2.0, audio=voice(2.0)), ()
    process, url = start_server(run, tmp_path / "serve.log")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1000,1500"):
        options.add_argument(argument)
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: "metrics" in d.find_element(By.ID, "model").text)
        upload = driver.find_element(By.ID, "files")
        driver.execute_script("arguments[0].style.display = 'block';", upload)  # the styled label hides the input
        upload.send_keys(str(clip))
        driver.execute_script("arguments[0].style.display = '';", upload)
        WebDriverWait(driver, 240).until(lambda d: d.find_element(By.ID, "status").get_attribute("data-stage") in ("done", "error"))
        status = driver.find_element(By.ID, "status")
        assert status.get_attribute("data-stage") == "done", status.text
        card = driver.find_element(By.CSS_SELECTOR, "#results .clip")
        score = float(card.find_element(By.CSS_SELECTOR, ".score").text)
        assert -3 <= score <= 3
        assert card.find_element(By.CSS_SELECTOR, ".class").text in ("negative", "neutral", "positive")
        transcript = card.find_element(By.CSS_SELECTOR, ".transcript .text").text.lower()
        assert transcript and all(w in transcript for w in words), transcript
        canvas = card.find_element(By.CSS_SELECTOR, "canvas.timeline")
        WebDriverWait(driver, 10).until(lambda d: canvas.get_attribute("data-drawn"))
        assert int(canvas.get_attribute("data-drawn")) >= 5 and canvas.size["height"] > 100  # face and audio rows
        # The canvas holds drawn pixels, not a blank box.
        inked = driver.execute_script("const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                                      "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;", canvas)
        assert inked > 1000
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(r.startswith(url) for r in resources), resources  # nothing from another server
        shot = Path(os.environ.get("MSAKIT_SCREENSHOT") or REPO / "benchmarks" / "results" / "serve" / "browser_test.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(shot))
    finally:
        if driver is not None:
            driver.quit()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
