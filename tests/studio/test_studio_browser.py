"""The studio in a real headless browser (Debian's chromium driven by Playwright, kept off the network):
the server runs as `orchestrion studio` on localhost with the tiny test models; the tests click
through streaming audio, generating and orchestrating MIDI, reconstruction, bad uploads and two tabs
at once. Screenshots and the measured click-to-first-audio latency go to test-artifacts/studio/.

On CI (CI=true) a missing chromium or Playwright fails these tests; elsewhere they are skipped.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import orchestrion
from orchestrion.studio.limits import MAX_UPLOAD_MEGABYTES, STREAM_BLOCK_SECONDS, STREAM_LOOKAHEAD_SECONDS

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# environment.md's flags, plus: play audio without a user gesture, resolve no host but this one
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"
SERVER_START_SECONDS = 90
REQUEST_SECONDS = 90_000  # ms: a request on a loaded 2-core machine (model load included)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser tests cannot run on CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    if shutil.which("ffmpeg") is None:
        _unavailable("ffmpeg is missing (apt-get install ffmpeg): gradio streams audio through it")
    if importlib.util.find_spec("gradio") is None:
        _unavailable("gradio is not installed (pip install -e '.[test]')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def studio_url(gan_run: Path, symphony_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`orchestrion studio` in its own process on a free localhost port, with the test models."""
    port = _free_port()
    src = Path(orchestrion.__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(src), os.environ.get(
        "PYTHONPATH", "")])}
    log = tmp_path_factory.mktemp("studio_server") / "server.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "orchestrion.cli", "studio", "--port", str(port), "--musika-model", str(gan_run),
             "--symphony-model", str(symphony_run)], stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert server.poll() is None, f"the studio exited: {log.read_text()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, f"the studio did not answer: {log.read_text()}"
                time.sleep(0.5)
        yield url
        assert server.poll() is None, f"the server died during the tests: {log.read_text()}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        (ARTIFACTS / "server.log").parent.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "server.log").write_bytes(log.read_bytes())


@pytest.fixture
def open_page(browser, studio_url: str, request: pytest.FixtureRequest) -> Iterator:
    """A function opening the studio in a new browser context (its own cookies: a separate tab's session).

    When the test fails, every page it opened is saved as a screenshot next to the others.
    """
    contexts = []

    def open_() -> object:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(REQUEST_SECONDS)
        page.goto(studio_url)
        page.wait_for_selector("#musika-play")
        return page

    yield open_
    report = getattr(request.node, "report_call", None)
    for k, context in enumerate(contexts):
        if report is not None and report.failed:
            for page in context.pages:
                _screenshot(page, f"failed-{request.node.name}-{k}")
        context.close()


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _run(page, button: str, status: str) -> str:
    """Click ``button`` and return the tab's new status line once the request finished (gradio shows its
    progress there meanwhile, and the line of the previous request until then)."""
    before = page.inner_text(status)
    page.click(button)
    return _status(page, status, before)


def _status(page, selector: str, before: str = "") -> str:
    """The status line once it is a finished request's ("Done:" or "Error:") and differs from ``before``."""
    page.wait_for_function(
        "([s, before]) => { const t = document.querySelector(s).innerText;"
        " return t !== before && ['Done:', 'Error:'].some(p => t.trim().startsWith(p)); }", arg=[selector, before])
    return " ".join(page.inner_text(selector).split())


def _playable(page, selector: str) -> None:
    """The audio player under ``selector`` loaded a file with a duration (the browser decoded it).

    gradio's player (wavesurfer) keeps its audio element in a shadow root.
    """
    page.wait_for_function(
        "s => { const box = document.querySelector(s);"
        " const roots = [box, ...[...box.querySelectorAll('*')].map(e => e.shadowRoot).filter(r => r)];"
        " return roots.some(r => [...r.querySelectorAll('audio')].some(a => a.readyState >= 1 && a.duration > 0)); }",
        arg=selector)


def _picture(page, selector: str) -> None:
    """An image under ``selector`` was decoded by the browser."""
    page.wait_for_function(
        "s => { const i = document.querySelector(s + ' img'); return i && i.complete && i.naturalWidth > 100; }",
        arg=selector)


def _upload(page, selector: str, path: Path) -> None:
    clear = page.locator(f"{selector} button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.set_input_files(f"{selector} input[type=file]", str(path))
    page.wait_for_function(  # gradio shows the file's stem and suffix in separate elements
        "([s, name]) => document.querySelector(s).innerText.replace(/\\s/g, '').includes(name)",
        arg=[selector, path.name])


def _download(page, selector: str) -> str:
    """The file name a download box offers (gradio lays out stem and suffix in separate elements)."""
    return "".join(page.inner_text(selector).split())


def _first_audio_seconds(page) -> float:
    """Click Play and wait until the streamed audio element is playing (its clock moved)."""
    started = time.monotonic()
    page.click("#musika-play")
    page.wait_for_function(
        "() => { const a = document.querySelector('#musika-audio audio'); return a && a.currentTime > 0; }")
    return time.monotonic() - started


def _set_slider(page, selector: str, value: float) -> None:
    box = page.locator(f"{selector} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_endless_audio_streams_and_the_sliders_steer_it(open_page) -> None:
    first = open_page()
    cold = _first_audio_seconds(first)  # the server loads the model on this first click
    first.click("#musika-stop")
    assert _status(first, "#musika-status").startswith("Done: stopped after")
    page = open_page()  # a fresh tab: no audio element of an earlier stream to mistake for this one
    warm = _first_audio_seconds(page)
    page.wait_for_function("() => document.querySelector('#musika-status').innerText.startsWith('Streaming seed 0')")
    clock = "() => document.querySelector('#musika-audio audio').currentTime"
    played_before, started = page.evaluate(clock), time.monotonic()
    page.wait_for_timeout(5000)
    played, waited = page.evaluate(clock) - played_before, time.monotonic() - started
    # more than the browser could have had buffered when the window began: new audio kept arriving
    assert played > STREAM_LOOKAHEAD_SECONDS + STREAM_BLOCK_SECONDS, f"stream stalled: {played:.2f} s in {waited:.2f} s"
    _set_slider(page, "#musika-density", 0.9)
    page.wait_for_function("() => document.querySelector('#musika-control').innerText.includes('density 0.90')")
    _set_slider(page, "#musika-tempo", 190)  # the slider goes to 200, this model was trained on 80..180 BPM
    page.wait_for_function("() => document.querySelector('#musika-control').innerText.includes('Error:')")
    assert "tempo 190 BPM is outside 80..180 BPM" in page.inner_text("#musika-control")
    _set_slider(page, "#musika-tempo", 150)  # the stream played on after the refused value and takes this one
    page.wait_for_function("() => document.querySelector('#musika-control').innerText.includes('tempo 150 BPM')")
    assert page.inner_text("#musika-status").startswith("Streaming seed 0")
    page.click("#musika-stop")
    assert re.match(r"Done: stopped after \d+\.\d s, seed 0", _status(page, "#musika-status"))
    _picture(page, "#musika-spectrogram")
    assert "stream.wav" in _download(page, "#musika-download")
    _screenshot(page, "endless-audio")
    report = (f"click to first audio: {cold:.2f} s (first click, model load included), {warm:.2f} s (model loaded); "
              f"then {played:.2f} s played in {waited:.2f} s")
    print(report)
    (ARTIFACTS / "latency.txt").write_text(report + "\n")


def test_symbolic_tab_generates_orchestrates_and_reports_a_corrupt_midi(open_page, inputs) -> None:
    page = open_page()
    page.get_by_role("tab", name="Symbolic").click()
    assert "seed 0, from scratch" in _run(page, "#symphony-generate", "#symphony-status")
    _picture(page, "#symphony-pianoroll")
    _playable(page, "#symphony-audio")
    assert "symphony-seed0.mid" in _download(page, "#symphony-midi")
    _screenshot(page, "symbolic-generate")

    _upload(page, "#orchestrate-upload", inputs["corrupt_midi"])
    assert _run(page, "#orchestrate-run", "#orchestrate-status").startswith(
        "Error: corrupt.mid: not a valid MIDI file, corrupt (header cut short at 10 bytes)")
    _screenshot(page, "orchestrate-corrupt-midi")
    _upload(page, "#orchestrate-upload", inputs["midi"])
    assert _run(page, "#orchestrate-run", "#orchestrate-status").startswith("Done: chorale.mid: ")
    _playable(page, "#orchestrate-original-audio")
    _playable(page, "#orchestrate-audio")
    _picture(page, "#orchestrate-pianoroll")
    assert "chorale-orchestrated.mid" in _download(page, "#orchestrate-midi")
    _screenshot(page, "orchestrate")


def test_reconstruction_tab_compares_and_reports_bad_uploads(open_page, inputs, tmp_path: Path) -> None:
    page = open_page()
    page.get_by_role("tab", name="Reconstruction").click()
    big = tmp_path / "big.wav"
    with open(big, "wb") as handle:
        handle.truncate((MAX_UPLOAD_MEGABYTES + 1) * 1024 * 1024)
    page.set_input_files("#reconstruct-upload input[type=file]", str(big))  # refused by the web server's limit
    page.get_by_text(f"exceed the maximum allowed size of {MAX_UPLOAD_MEGABYTES}.0 Mb").wait_for()
    _screenshot(page, "upload-too-large")
    _upload(page, "#reconstruct-upload", inputs["not_audio"])
    message = _run(page, "#reconstruct-run", "#reconstruct-status")
    assert message.startswith("Error: notes.txt: unsupported audio extension '.txt'")
    _upload(page, "#reconstruct-upload", inputs["audio"])
    message = _run(page, "#reconstruct-run", "#reconstruct-status")
    assert message == "Done: melody.wav: 2.0 s, 2 channel(s), reconstructed at level 2"
    _playable(page, "#reconstruct-original")
    _playable(page, "#reconstruct-audio")
    _picture(page, "#reconstruct-spectrograms")
    _screenshot(page, "reconstruction")


def test_two_tabs_at_once_keep_their_own_streams_and_files(open_page) -> None:
    first, second = open_page(), open_page()
    for page, seed in ((first, 1), (second, 2)):
        page.get_by_role("tab", name="Symbolic").click()
        page.fill("#symphony-seed input", str(seed))
    first.click("#symphony-generate")
    second.click("#symphony-generate")
    for page, seed in ((first, 1), (second, 2)):
        assert f"seed {seed}, from scratch" in _status(page, "#symphony-status")
        assert f"symphony-seed{seed}.mid" in _download(page, "#symphony-midi")

    for page, seed in ((first, 4), (second, 5)):
        page.get_by_role("tab", name="Endless audio").click()
        page.fill("#musika-seed input", str(seed))
        page.click("#musika-play")
    for page, seed in ((first, 4), (second, 5)):
        page.wait_for_function(f"() => document.querySelector('#musika-status').innerText"
                               f".startsWith('Streaming seed {seed}')")
    first.click("#musika-stop")
    assert _status(first, "#musika-status").startswith("Done: stopped after")
    second.wait_for_timeout(1000)
    assert " ".join(second.inner_text("#musika-status").split()).startswith("Streaming seed 5")  # still playing

    first.locator("#musika-endless input").uncheck()  # a fixed length in the first tab ends by itself
    _set_slider(first, "#musika-seconds", 2)
    first.fill("#musika-seed input", "6")
    assert _run(first, "#musika-play", "#musika-status").startswith("Done: finished after 2.0 s, seed 6")
    _picture(first, "#musika-spectrogram")
    assert " ".join(second.inner_text("#musika-status").split()).startswith("Streaming seed 5")
    second.click("#musika-stop")
    assert re.match(r"Done: stopped after .*, seed 5", _status(second, "#musika-status"))
