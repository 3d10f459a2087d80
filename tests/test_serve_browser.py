"""A real browser on ``msakit serve``: Debian's Chromium (headless, through Selenium and
/usr/bin/chromedriver) on a server started on a free local port, with every host but
127.0.0.1 unreachable (a resolver rule and a dead proxy; the test checks another host fails).

- ``/docs`` (Swagger UI) and ``/redoc`` render the API from files this server sends alone;
- a clip is chosen with the keyboard alone (Tab to the picker, Enter/Space opens it; the file
  itself goes to the file input, as a native file chooser cannot be driven headless), and its
  result shows score, class, scale, warnings, transcript and the timeline (or its note) as the
  payload says; the CSV has the ``warnings``, ``error_code`` and ``error`` columns; a clip the
  server cannot read becomes a card with its error;
- at phone size (390x844) nothing is wider than the screen and the stage pills wrap;
- no console errors, every loaded resource from the server's origin.

Two servers: one on a text-only run (``text_only_run``: keyboard, a failed clip, no timeline
drawn), one on a text+audio+vision run (``clip_run``: a GRID clip with every series drawn, a
speech recording scored without vision with the warning on its card).
Screenshots go to ``benchmarks/results/serve/`` (page_desktop.png and page_phone.png of the
t+a+v run, page_text_only.png, docs.png, redoc.png; ``MSAKIT_SCREENSHOTS`` names another folder,
``MSAKIT_SERVE_RUN`` another run for the text-only server). The browser tests are skipped, with
the reason, only where no browser is installed (``.ci/run`` installs one); the check of the docs
pages' HTML runs without one."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

for _module in ("fastapi", "uvicorn", "multipart", "av", "librosa", "mediapipe", "moonshine_voice", "skimage"):
    pytest.importorskip(_module)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[1]
MEDIA = next((p / "shared" / "data" / "media" for p in Path(__file__).resolve().parents[1:4] if (p / "shared" / "data" / "media").is_dir()),
             Path("shared/data/media"))
SHOTS = Path(os.environ.get("MSAKIT_SCREENSHOTS") or REPO / "benchmarks" / "results" / "serve")
# Every host but the server's is unreachable: names resolve to nothing, and what is not
# 127.0.0.1 goes to a proxy on the discard port, where nothing listens.
TOKEN = "page-test-token"
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1")

NO_BROWSER = not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK))
needs_browser = pytest.mark.skipif(NO_BROWSER, reason=f"no browser: {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium, chromium-driver) are not installed")


def test_api_docs_pages_name_files_of_this_server_alone():
    """Without a browser: /docs and /redoc name only files under /static/api-docs/, which are
    served, and the ReDoc script served has no address of Redocly's CDN left."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from msakit.workflows.serve.api_docs import ASSETS_URL, REDOC_CDN_LOGO, mount_api_docs

    app = FastAPI(title="docs check", docs_url=None, redoc_url=None)
    assert mount_api_docs(app)
    client = TestClient(app)
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        answer = client.get(page)
        assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
        named = re.findall(r"""(?:src|href)=["']([^"']+)""", answer.text)
        assert "cdn." not in answer.text and "fonts.googleapis" not in answer.text and all(n.startswith(ASSETS_URL) for n in named), named
        for name in named:
            assert client.get(name).status_code == 200, name
    assert '"validatorUrl": null' in client.get("/docs").text
    script = client.get(f"{ASSETS_URL}/redoc.standalone.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"] and len(script.content) > 500_000
    assert REDOC_CDN_LOGO.encode() not in script.content and b"cdn.redoc.ly" not in script.content


def start_server(run: Path, log: Path, env: dict, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """``msakit serve RUN --port 0``; the URL it prints once its workers are warm."""
    process = subprocess.Popen([sys.executable, "-m", "msakit.cli", "serve", str(run), "--port", "0", *extra], cwd=REPO, env=env,
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


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def serving(run: Path, tmp_path_factory, extra: tuple[str, ...] = ()):
    env = {**os.environ, "MSAKIT_CACHE": str(tmp_path_factory.getbasetemp() / "msakit-cache")}
    env.pop("MSAKIT_SERVE_TOKEN", None)
    process, url = start_server(run, tmp_path_factory.mktemp("serve") / "serve.log", env, extra)
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def server(text_only_run, tmp_path_factory):
    """``msakit serve`` on a run that reads text alone, asking for a token."""
    yield from serving(Path(os.environ.get("MSAKIT_SERVE_RUN") or text_only_run), tmp_path_factory, ("--token", TOKEN))


@pytest.fixture(scope="module")
def clip_server(clip_run, tmp_path_factory):
    """``msakit serve`` on a run that reads text, audio and vision (and may lack audio or vision)."""
    yield from serving(clip_run, tmp_path_factory)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", "--window-size=1000,1400", *OFFLINE):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get("data:text/html,<title>probe</title>")
        # The blocking works: another host, by name or by address, cannot be reached.
        outcome = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.all(['http://example.com/', 'http://198.51.100.7/'].map((u) => fetch(u, {mode: 'no-cors'})"
            "  .then(() => 'reached ' + u, () => 'blocked'))).then(done);")
        assert outcome == ["blocked", "blocked"], outcome
        driver.get_log("browser")  # drop the probe's errors
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def resources(driver) -> list[str]:
    return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")


def assert_local(driver, url: str) -> None:
    loaded = resources(driver)
    assert loaded and all(r.startswith(url) or r.startswith(("blob:", "data:")) for r in loaded), loaded
    assert console_errors(driver) == []


def screenshot(driver, name: str, full: bool = True) -> Path:
    """The page as drawn, whole (Chromium's DevTools capture beyond the window) or the window."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    if not full:
        assert driver.save_screenshot(str(path))
        return path
    width, height = driver.execute_script("return [window.innerWidth, Math.ceil(document.querySelector('footer').getBoundingClientRect().bottom"
                                          " + window.scrollY + 12)]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                             "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@needs_browser
def test_api_docs_render_from_this_server_alone(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with urllib.request.urlopen(server + "openapi.json", timeout=30) as answer:
        title = json.load(answer)["info"]["title"]
    browser.get(server + "docs")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    info = browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title")
    assert info.is_displayed() and title in info.text
    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")) >= 2)  # the routes
    assert browser.execute_script("return typeof SwaggerUIBundle") == "function"
    loaded = resources(browser)
    assert any(r.endswith("/swagger-ui-bundle.js") for r in loaded) and any(r.endswith("/swagger-ui.css") for r in loaded), loaded
    assert_local(browser, server)
    screenshot(browser, "docs.png", full=False)

    browser.get(server + "redoc")
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".api-content h1"))
    assert title in browser.find_element(By.CSS_SELECTOR, ".api-content h1").text
    WebDriverWait(browser, 10).until(lambda d: "/api/predict" in d.find_element(By.CSS_SELECTOR, ".api-content").text)
    assert browser.execute_script("return typeof Redoc") == "object"
    assert any(r.endswith("/redoc.standalone.js") for r in resources(browser))
    assert_local(browser, server)
    screenshot(browser, "redoc.png", full=False)


def unreadable_clip(path: Path) -> Path:
    """Looks like a WAV file by its first bytes, holds nothing a decoder can read."""
    path.write_bytes(b"RIFF\x24\x10\x00\x00WAVE" + bytes(range(256)) * 8)
    return path


def grid_clip(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """A real GRID clip and two of its words (a generated clip, no words, without the media)."""
    if (MEDIA / "grid" / "pwij3p.mpg").is_file():
        return MEDIA / "grid" / "pwij3p.mpg", ("white", "three")
    from msakit.extract.media import voice, write_clip

    return write_clip(tmp_path / "clip.mp4", seconds=2.0, audio=voice(2.0)), ()


def open_page(browser, url: str, token: str | None = None) -> dict:
    """The page at desktop size, its model described; the model as /api/model gives it. With a
    token, the page is already open and given it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if token is None:
        browser.set_window_size(1000, 1400)
        browser.get(url)
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "model").get_attribute("data-loaded"))
    # The header says what the model is and how good, in plain words: no server path.
    header = browser.find_element(By.CSS_SELECTOR, "#model .what").text + "\n" + browser.find_element(By.CSS_SELECTOR, "#model .how").text
    model = browser.execute_script("return fetch('/api/model', {headers: arguments[0] ? {Authorization: 'Bearer ' + arguments[0]} : {}})"
                                   ".then(r => r.json())", token)
    assert not re.search(r"(^|\s)/\w", browser.find_element(By.ID, "model").text), header
    assert re.search(r"-?\d+ \(negative\) to -?\d+ \(positive\)", header), header
    if model.get("quality"):
        acc = f"{100 * model['quality']['acc2']:.1f}%"
        assert f"right {acc} of the time" in header and f"MAE {model['quality']['mae']:.2f}" in header, header
    else:
        assert "No test results" in header, header
    return model


def wait_for_result(browser) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 240).until(lambda d: d.find_element(By.ID, "status").get_attribute("data-stage") in ("done", "error"))
    status = browser.find_element(By.ID, "status")
    assert status.get_attribute("data-stage") == "done", status.text
    return browser.execute_script("return window.msakitPage.lastResult")


def check_card(browser, row: dict, model: dict, words=()) -> None:
    """A scored clip's card shows what its row in the payload says."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    card = browser.find_elements(By.CSS_SELECTOR, "#results .clip:not(.failed)")[[r["index"] for r in
                                                                                  browser.execute_script("return window.msakitPage.lastRows") if not r.get("failed")].index(row["index"])]
    assert card.find_element(By.CSS_SELECTOR, "h3").text == row["video"]
    low, high = model["scale"]
    score = float(card.find_element(By.CSS_SELECTOR, ".score").text)
    assert low <= score <= high and abs(score - row["score"]) < 0.006
    assert card.find_element(By.CSS_SELECTOR, ".class").text == row["class"]
    assert f"from {low} (negative) to {high} (positive)" in card.find_element(By.CSS_SELECTOR, ".scale-name").text
    shown = [w.text.lstrip("⚠ ").strip() for w in card.find_elements(By.CSS_SELECTOR, ".warnings .warning")]
    assert shown == [w["message"] for w in row.get("warnings", [])]
    assert all(w.is_displayed() for w in card.find_elements(By.CSS_SELECTOR, ".warnings .warning"))
    if row.get("used"):
        assert all(m in card.find_element(By.CSS_SELECTOR, ".used").text for m in row["used"])
    assert bool(card.find_elements(By.CSS_SELECTOR, ".unimodal")) == bool(row.get("unimodal"))
    if row.get("unimodal"):
        assert "not separate scores" in card.find_element(By.CSS_SELECTOR, ".unimodal").text
    transcript = card.find_element(By.CSS_SELECTOR, ".transcript .text").text.lower()
    assert transcript and all(w in transcript for w in words), transcript

    # The timeline: one drawn row per series the result has, with a table alternative; or the note.
    series = row["timeline"]["series"]
    if series:
        canvas = card.find_element(By.CSS_SELECTOR, "canvas.timeline")
        WebDriverWait(browser, 10).until(lambda d: canvas.get_attribute("data-drawn"))
        assert int(canvas.get_attribute("data-drawn")) == len(series) and canvas.size["height"] > 40 * len(series)
        assert all(s["label"] in canvas.get_attribute("aria-label") for s in series.values())
        inked = browser.execute_script("const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                                       "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;", canvas)
        assert inked > 1000  # drawn pixels, not a blank box
        table = card.find_element(By.CSS_SELECTOR, "details.timeline-text table")
        assert [th.get_attribute("textContent") for th in table.find_elements(By.CSS_SELECTOR, "thead th")] == ["measure", "unit", "min", "mean", "max"]
        rows = [[c.get_attribute("textContent") for c in tr.find_elements(By.CSS_SELECTOR, "th, td")] for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
        assert sorted(r[:2] for r in rows) == sorted([s["label"], s["unit"]] for s in series.values())  # (WebDriver sorts keys)
    else:
        assert not card.find_elements(By.CSS_SELECTOR, "canvas")
        assert card.find_element(By.CSS_SELECTOR, ".timeline-note").text


def check_phone(browser, shot: str | None) -> None:
    """At 390x844: nothing wider than the screen, the stage pills inside it, each timeline
    redrawn to its card's width."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(390, 844)
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.innerWidth") <= 390)
    time.sleep(0.5)  # the timeline is redrawn 120 ms after the last resize
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
        browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    pills = browser.execute_script("return [...document.querySelectorAll('#status .stages li')].map(e => e.getBoundingClientRect().right)")
    assert pills and max(pills) <= browser.execute_script("return window.innerWidth")
    for canvas in browser.find_elements(By.CSS_SELECTOR, "canvas.timeline"):
        assert canvas.size["width"] <= browser.execute_script("return arguments[0].parentElement.clientWidth", canvas)
        assert canvas.get_attribute("data-width") == str(browser.execute_script("return arguments[0].parentElement.clientWidth", canvas))
    if shot:
        browser.execute_script("window.scrollTo(0, 0)")
        screenshot(browser, shot)
    assert console_errors(browser) == []


@needs_browser
def test_keyboard_picks_clips_and_the_result_says_what_it_rests_on(server, browser, tmp_path):
    """A text-only run; the picker used with the keyboard; one clip scored, one unreadable."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    clip, words = grid_clip(tmp_path)
    broken = unreadable_clip(tmp_path / "broken.wav")
    # This server asks for a token: the page says so and has the token box focused; a wrong
    # token is refused; the right one, typed and sent with Enter, lets the page load the model.
    browser.set_window_size(1000, 1400)
    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "auth").is_displayed())
    assert "asks for a token" in browser.find_element(By.ID, "model").text
    assert browser.switch_to.active_element.get_attribute("id") == "token"
    ActionChains(browser).send_keys("wrong", Keys.ENTER).perform()
    WebDriverWait(browser, 10).until(lambda d: "refused that token" in d.find_element(By.ID, "model").text)
    box = browser.find_element(By.ID, "token")
    box.clear()
    box.send_keys(TOKEN, Keys.ENTER)
    model = open_page(browser, server, token=TOKEN)
    assert not browser.find_element(By.ID, "auth").is_displayed()
    refusals = console_errors(browser)  # the browser logs each 401 (those two, and nothing else)
    assert len(refusals) == 2 and all("/api/model" in e and "401" in e for e in refusals), refusals


    # Tab reaches the picker from the top of the page; Enter and Space each open it: they click
    # the file input (here the click is counted and the native chooser, which cannot be driven
    # headless, cancelled).
    browser.execute_script("window.pickerClicks = 0; document.getElementById('files').addEventListener('click',"
                           " (e) => { window.pickerClicks += 1; e.preventDefault(); });"
                           "document.activeElement.blur(); window.scrollTo(0, 0);")
    for _ in range(12):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.execute_script("return document.activeElement.id") == "drop":
            break
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "drop" and focused.tag_name == "button", focused.get_attribute("outerHTML")[:200]
    assert focused.accessible_name.startswith("Choose clips"), focused.accessible_name
    assert browser.execute_script("const s = getComputedStyle(document.activeElement); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    WebDriverWait(browser, 5).until(lambda d: d.execute_script("return window.pickerClicks") == 1)
    ActionChains(browser).send_keys(Keys.SPACE).perform()
    WebDriverWait(browser, 5).until(lambda d: d.execute_script("return window.pickerClicks") == 2)
    # The file input itself is labelled, and not display:none (it is visually hidden).
    files = browser.find_element(By.ID, "files")
    assert files.accessible_name and browser.execute_script("return getComputedStyle(arguments[0]).display", files) != "none"
    files.send_keys(f"{clip}\n{broken}")  # what the chooser would hand over: two clips

    result = wait_for_result(browser)
    assert len(result["predictions"]) == 1 and len(result["failures"]) == 1, result
    check_card(browser, result["predictions"][0], model, words)

    # The clip the server could not read: a card with its error, a row in the table.
    failed = browser.find_element(By.CSS_SELECTOR, "#results .clip.failed")
    assert failed.find_element(By.CSS_SELECTOR, "h3").text == broken.name
    reason = failed.find_element(By.CSS_SELECTOR, ".failure").text
    assert reason == "Not scored: " + result["failures"][0]["error"]["message"], reason
    assert result["failures"][0]["error"]["code"] in failed.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")) == 2
    table = list(csv.DictReader(io.StringIO(browser.execute_script("return window.msakitPage.csvText(window.msakitPage.lastRows)"))))
    assert {"video", "score", "class", "warnings", "error_code", "error"} <= set(table[0]) and len(table) == 2
    by_name = {r["video"]: r for r in table}
    assert by_name[broken.name]["error_code"] == result["failures"][0]["error"]["code"] and by_name[broken.name]["error"]
    assert not by_name[broken.name]["score"] and not by_name[clip.name]["error"]
    assert_local(browser, server)
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    screenshot(browser, "page_text_only.png")
    check_phone(browser, None)


@needs_browser
def test_a_clip_without_video_is_scored_with_a_visible_warning_and_timelines_are_drawn(clip_server, browser, tmp_path):
    """A text+audio+vision run that may lack audio or vision: a GRID clip (every series drawn)
    and a speech recording (no vision: scored without it, and the card says so)."""
    from selenium.webdriver.common.by import By

    clip, words = grid_clip(tmp_path)
    speech = MEDIA / "speech" / "librivox_0880.wav"
    if not speech.is_file():
        pytest.skip(f"no real speech recording ({speech}): a generated voice has no words to recognise")
    model = open_page(browser, clip_server)
    assert model["modalities_used"] == ["text", "audio", "vision"] and "vision" in model["absent_ok"]
    browser.find_element(By.ID, "files").send_keys(f"{clip}\n{speech}")
    result = wait_for_result(browser)
    assert not result["failures"] and len(result["predictions"]) == 2, result
    video_row, audio_row = sorted(result["predictions"], key=lambda r: r["index"])
    assert video_row["timeline"]["series"] and "vision_absent" in [w["code"] for w in audio_row["warnings"]], audio_row["warnings"]
    check_card(browser, video_row, model, words)
    check_card(browser, audio_row, model)
    table = list(csv.DictReader(io.StringIO(browser.execute_script("return window.msakitPage.csvText(window.msakitPage.lastRows)"))))
    assert table[1]["warnings"] == "; ".join(w["message"] for w in audio_row["warnings"])
    assert browser.find_elements(By.CSS_SELECTOR, "#results audio.player")  # the user's own recording, to play here
    assert_local(browser, clip_server)
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "page_desktop.png")
    check_phone(browser, "page_phone.png")
