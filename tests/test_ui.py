"""`ganforge ui`, driven as people and programs drive it: through gradio's Python client, and in a
real headless Chromium (selenium) that also makes the README's screenshots.

The page runs as `python -m ganforge ui` in a child process, as a user starts it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")

# Where the browser test leaves its screenshots: GANFORGE_SCREENSHOTS=docs makes the README's.
SCREENSHOTS = os.environ.get("GANFORGE_SCREENSHOTS")
REFRESH = 2  # seconds between the Watch page's updates


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(url, runs folder, port) of a page serving a fresh runs folder."""
    pytest.importorskip("gradio")
    root = tmp_path_factory.mktemp("ui")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ganforge", "ui", "--runs", str(root / "runs"), "--port", str(port)],
                              cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert server.poll() is None, server.communicate()
            assert time.time() < deadline, "the page never answered"
            time.sleep(0.5)
    yield url, root / "runs", port
    client = gradio_client.Client(url, verbose=False)
    client.predict(api_name="/stop")  # a training it started runs on without it otherwise
    server.terminate()
    server.wait(30)


@pytest.fixture
def client(page):
    return gradio_client.Client(page[0], verbose=False)


def value(update):
    return update["value"] if isinstance(update, dict) else update


def start(client, **settings):
    base = dict(kind="built-in", builtin="digits", folder="", uploads=[], preset="none", size="16", steps=400, arch="dcgan",
                g_width=8, d_width=8, latent_dim=16, batch_size=16, log_every=2, sample_every=5, checkpoint_every=100, collapse_check=False)
    return client.predict(**{**base, **settings}, api_name="/start")


def wait_until(check, timeout=120, every=0.5):
    deadline = time.time() + timeout
    while not (result := check()):
        assert time.time() < deadline, "timed out"
        time.sleep(every)
    return result


def idle(client, run):
    """Wait until the page's training of `run` has exited."""
    wait_until(lambda: "· training" not in client.predict(name=run, grid_index=0, api_name="/watch")[1])


def test_the_page_listens_on_127_0_0_1_only(page):
    _, _, port = page
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:  # 0A: LISTEN
                listening.append(local.split(":")[0])
    assert listening == ["0100007F"]  # 127.0.0.1, and no other address


def test_train_watch_stop_and_resume(client, page):
    status, run = start(client)
    run = value(run)
    assert status == f"Training {run}; watch it below." and run.endswith("-digits")

    def watched():
        out = client.predict(name=run, grid_index=0, api_name="/watch")
        return out if out[2] and out[5] and len(out[5]["data"]) > 0 else None

    out = wait_until(watched)
    assert Path(out[2]).suffix == ".png" and out[1].startswith("step ")
    stopped = client.predict(api_name="/stop")
    assert "checkpoint saved" in stopped
    folder = page[1] / run
    step = max(int(p.stem.split("-")[1]) for p in (folder / "checkpoints").glob("step-*.pt"))
    assert step > 0 and f"Stopped at step {step}" in stopped

    assert client.predict(name=run, steps=step + 6, api_name="/resume") == f"Resumed {run}."
    wait_until(lambda: (folder / "summary.json").exists())
    idle(client, run)
    assert (folder / "checkpoints" / f"step-{step + 6:06d}.pt").exists()
    assert "done" in client.predict(name=run, grid_index=0, api_name="/watch")[1]


def test_a_second_start_waits_its_turn(client, page):
    status, run = start(client, steps=5000)
    assert status == f"Training {value(run)}; watch it below."
    try:
        again, _ = start(client)
        assert again == f"Error: {value(run)} is training; stop it first (one training at a time)."
    finally:
        client.predict(api_name="/stop")


def test_sample_from_a_run_and_from_an_uploaded_generator(client, page):
    status, run = start(client, steps=6)
    folder = page[1] / value(run)
    wait_until(lambda: (folder / "generator.safetensors").exists())
    idle(client, value(run))
    text, grid, download = client.predict(name=value(run), upload=None, seed=3, n=9, as_grid=True, api_name="/sample")
    assert text == f"9 pictures from {value(run)}, seed 3." and Image.open(grid).size[0] > 16
    text, grid, download = client.predict(name=None, upload=gradio_client.handle_file(str(folder / "generator.safetensors")), seed=3, n=4,
                                          as_grid=False, api_name="/sample")
    assert text.startswith("4 pictures from ") and len(zipfile.ZipFile(download).namelist()) == 4
    text, grid, _ = client.predict(name=value(run), upload=None, seed=3, n=4, as_grid=True, truncation=0.0, class_="", api_name="/sample")
    pixels = np.asarray(Image.open(grid))
    cell = (pixels.shape[1] - 6) // 2  # a 2x2 grid with 2-pixel padding
    assert text == f"4 pictures from {value(run)}, seed 3."
    assert np.array_equal(pixels[2 : 2 + cell, 2 : 2 + cell], pixels[2 : 2 + cell, 4 + cell : 4 + 2 * cell])  # truncation 0: the mean picture
    assert client.predict(name=value(run), upload=None, seed=3, n=4, as_grid=True, truncation=1.0, class_="7",
                          api_name="/sample")[0].startswith("Error: --class needs a class-conditional generator")


def test_a_walk_video_and_an_export_from_the_sample_page(client, page):
    import imageio.v3 as iio

    status, run = start(client, steps=4)
    folder = page[1] / value(run)
    wait_until(lambda: (folder / "generator.safetensors").exists())
    idle(client, value(run))
    text, video = client.predict(name=value(run), upload=None, seed=1, truncation=1.0, class_="", grid="1x2", frames_per_point=3, api_name="/walk")
    frames = iio.imread(video["video"] if isinstance(video, dict) else video, index=None)
    assert text.startswith("A walk through 4 points from seed 1: 12 frames") and frames.shape[0] == 12
    text, onnx_file = client.predict(name=value(run), upload=None, format_="onnx", api_name="/export")
    assert text.startswith(f"Exported {value(run)}.onnx") and Path(onnx_file).stat().st_size > 1000
    assert client.predict(name=value(run), upload=None, seed=1, truncation=1.0, class_="", grid="2by2", frames_per_point=3,
                          api_name="/walk")[0].startswith("Error: ")


def test_stylize_two_small_pictures(client, tmp_path):
    rng = np.random.default_rng(0)
    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(photo)
    Image.fromarray(np.kron(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8), np.ones((8, 8, 1), dtype=np.uint8))).save(painting)
    job = client.submit(content=gradio_client.handle_file(str(photo)), styles=[gradio_client.handle_file(str(painting))], style_weights="",
                        size=32, steps=3, style_weight=1000, content_weight=2, preserve_color="none", backbone="lite0", api_name="/stylize")
    text, image, download = job.result(timeout=300)
    assert text == "Done." and Image.open(image).size == (32, 24)
    assert any(str(o[0]).startswith("step ") for o in job.outputs()[:-1])  # progress shown while it worked


def test_stylize_a_small_video(client, tmp_path):
    import imageio.v3 as iio

    from ganforge.video import write_video

    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)
    clip, painting = tmp_path / "clip.mp4", tmp_path / "painting.png"
    write_video([scene[:, 2 * i : 2 * i + 32] for i in range(3)], clip, fps=8)  # a pan over a random scene
    Image.fromarray(np.kron(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8), np.ones((8, 8, 1), dtype=np.uint8))).save(painting)
    job = client.submit(clip=gradio_client.handle_file(str(clip)), styles=[gradio_client.handle_file(str(painting))],
                        style_weights="", size=32, steps=2, style_weight=1000, content_weight=2, preserve_color="none", backbone="lite0",
                        frame_steps=2, temporal_weight=1000, api_name="/stylize_video")
    text, frame, video = job.result(timeout=300)
    assert text == "Done: 3 frames, 32x24 at 8 fps."
    assert iio.imread(video["video"] if isinstance(video, dict) else video, index=None).shape[:3] == (3, 24, 32)
    shown = [str(o[0]).split(" (")[0] for o in job.outputs()[:-1]]
    assert shown == ["frame 1 of 3", "frame 2 of 3", "frame 3 of 3"]  # each frame shown as it is done
    assert client.predict(clip=None, styles=[gradio_client.handle_file(str(painting))], style_weights="", size=32, steps=2,
                          style_weight=1000, content_weight=2, preserve_color="none", backbone="lite0", frame_steps=2,
                          temporal_weight=1000, api_name="/stylize_video")[0] == "Choose a video and at least one painting."


def test_bad_input_gets_the_command_lines_sentence_and_the_page_stays_up(client, tmp_path):
    status, _ = start(client, kind="folder", folder=str(tmp_path / "no-such-folder"))
    assert status == (f"Error: {tmp_path / 'no-such-folder'}: no such folder or built-in dataset "
                      "(built-ins: digits, mnist, fashion-mnist, cifar10).")
    empty = tmp_path / "nothing.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "no pictures here")
    status, _ = start(client, kind="upload", uploads=[gradio_client.handle_file(str(empty))])
    assert status == "Error: the upload holds no pictures (nothing.zip)."
    fake = tmp_path / "fake"
    fake.mkdir()
    for i in range(20):
        (fake / f"picture{i}.png").write_text("not a picture")
    status, _ = start(client, kind="folder", folder=str(fake))
    assert status.startswith("Error: ") and str(fake) in status and "\n" not in status
    assert client.predict(name="../../etc", upload=None, seed=0, n=4, as_grid=True, api_name="/sample")[0].startswith("Error: ")
    assert client.predict(name=None, grid_index=0, api_name="/watch")[1] == "Choose a run."  # still answering


def chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def test_in_a_real_browser_training_shows_its_sample_grid(page, tmp_path):
    if chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs chromium and chromium-driver (.ci/run); the browser test must run there.")
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = chromium()
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    wait = WebDriverWait(driver, 300, poll_frequency=0.5)
    shots = Path(SCREENSHOTS or tmp_path)
    shots.mkdir(exist_ok=True)
    try:
        driver.get(page[0])

        def field(label):  # the visible one: Train and Stylize both have a --steps
            return wait.until(lambda d: next((e for e in d.find_elements(By.XPATH, f"//input[@aria-label='{label}']") if e.is_displayed()), None))

        def type_into(label, text):
            box = field(label)
            box.clear()
            box.send_keys(text)

        type_into("--steps", "600" if SCREENSHOTS else "300")
        driver.find_element(By.XPATH, "//button[contains(., 'Advanced')]").click()
        for label, text in (("--sample-every", "10"), ("--log-every", "2"), ("--batch-size", "32")):
            type_into(label, text)
        driver.find_element(By.XPATH, "//button[normalize-space()='Start']").click()
        wait.until(lambda d: "watch it below" in d.page_source)
        driver.find_element(By.XPATH, "//button[@role='tab' and normalize-space()='Watch']").click()
        wait.until(lambda d: d.find_elements(By.XPATH, "//img[contains(@src, 'step-')]"))
        wait.until(lambda d: "images/s" in d.page_source)
        if SCREENSHOTS:  # for the README: a run far enough along to show digits
            wait.until(lambda d: "· done" in d.find_element(By.TAG_NAME, "body").text)
            time.sleep(REFRESH + 1)
        else:
            time.sleep(3)  # a few more grids and points on the curves
        driver.save_screenshot(str(shots / "ui-watch.png"))
        gradio_client.Client(page[0], verbose=False).predict(api_name="/stop")

        from skimage import data

        photo, painting = tmp_path / "astronaut.png", tmp_path / "texture.png"
        Image.fromarray(data.astronaut()).resize((256, 256)).save(photo)
        Image.fromarray(data.immunohistochemistry()).save(painting)
        driver.find_element(By.XPATH, "//button[@role='tab' and normalize-space()='Stylize']").click()
        uploads = wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, "input[type=file]") if e.get_attribute("accept")])
        uploads[-2].send_keys(str(photo))
        uploads[-1].send_keys(str(painting))
        type_into("--size", "128")
        type_into("--steps", "15")
        time.sleep(1)
        [b for b in driver.find_elements(By.XPATH, "//button[normalize-space()='Stylize' and not(@role='tab')]") if b.is_displayed()][0].click()
        wait.until(lambda d: "Done." in d.find_element(By.TAG_NAME, "body").text)
        driver.save_screenshot(str(shots / "ui-stylize.png"))
    except Exception:
        driver.save_screenshot(str(tmp_path / "failed.png"))
        print("screenshot of the failure:", tmp_path / "failed.png")
        raise
    finally:
        driver.quit()
        gradio_client.Client(page[0], verbose=False).predict(api_name="/stop")
    assert (shots / "ui-watch.png").stat().st_size > 10_000


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch):
    import importlib.util

    from conftest import one_line_error, run

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    one_line_error(run("ui"), 'ganforge ui needs gradio: pip install "ganforge[ui]".')
