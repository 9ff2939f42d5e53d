"""`srfer serve` as it runs: real processes on 127.0.0.1, a real PostgreSQL shared by two
replicas (one killed with -9 under load), a database that goes down and comes back, a client
that hangs up mid-upload, and the web page in a real headless Chromium."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from serving import ROOT, Postgres, Server, require
from typer.testing import CliRunner

from srfer.cli import app

SMALL, CROP = ROOT / "examples" / "astronaut_small.png", ROOT / "examples" / "faces" / "astronaut_face_32.png"
ENROLL = ROOT / "examples" / "gallery" / "astronaut_128.png"
KEY = {"X-API-Key": "sesame"}
pytestmark = pytest.mark.slow


def upload(path: Path, field: str = "image") -> dict:
    return {field: (path.name, path.read_bytes(), "image/png")}


@pytest.fixture(scope="module")
def postgres():
    cluster = Postgres()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    running = Server("--gallery", str(folder / "g.sqlite"), env={"SRFER_API_KEY": "sesame"},
                     log=folder / "serve.log").wait()  # fmt: skip
    yield running
    running.stop()


def test_a_client_that_hangs_up_mid_upload_leaves_the_server_serving(server: Server) -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + b"\x89PNG" * 256
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                  b"Content-Length: 500000\r\n\r\n" + body)  # fmt: skip
    time.sleep(0.5)
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.post(f"{server.url}/v1/analyze", files=upload(SMALL), timeout=60).json()["faces"]


def test_the_gallery_is_shared_by_replicas_and_survives_a_killed_one(
    postgres: Postgres, tmp_path: Path
) -> None:
    env = {"SRFER_API_KEY": "sesame"}
    a = Server("--gallery", postgres.url, env=env, log=tmp_path / "a.log")
    b = Server("--gallery", postgres.url, env=env, log=tmp_path / "b.log")
    try:
        a.wait(), b.wait()
        enrolled = httpx.post(
            f"{a.url}/v1/gallery/astronaut", files=upload(ENROLL, "images"), headers=KEY, timeout=60
        )
        assert enrolled.json() == {"name": "astronaut", "added": 1}
        face = httpx.post(f"{b.url}/v1/analyze", files=upload(SMALL), timeout=60).json()["faces"][0]
        assert face["identity"] == "astronaut"  # enrolled through a, named through b
        answers: list[int] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                answers.append(httpx.post(f"{b.url}/v1/analyze", files=upload(CROP), timeout=60).status_code)

        thread = threading.Thread(target=load)
        thread.start()
        time.sleep(1.0)
        a.kill()  # kill -9 while b is under load
        time.sleep(2.0)
        stop.set()
        thread.join()
        assert answers and set(answers) == {200}, answers
        assert httpx.get(f"{b.url}/v1/gallery").json() == {"identities": {"astronaut": 1}}
        down_and_back(postgres, b)
    finally:
        a.stop(), b.stop()


def down_and_back(postgres: Postgres, server: Server) -> None:
    """The database goes down: 503s that say so, the server stays up; it comes back: served again."""
    postgres.stop()
    try:
        health = httpx.get(f"{server.url}/health", timeout=30)
        assert health.status_code == 503 and health.json()["gallery"].startswith("unavailable")
        refused = httpx.post(f"{server.url}/v1/analyze", files=upload(SMALL), timeout=60)
        assert refused.status_code == 503 and "unavailable" in refused.json()["error"]
        assert refused.headers["retry-after"]
    finally:
        postgres.start()
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
    face = httpx.post(f"{server.url}/v1/analyze", files=upload(SMALL), timeout=60).json()["faces"][0]
    assert face["identity"] == "astronaut"


def test_the_cli_takes_a_postgresql_gallery(postgres: Postgres) -> None:
    runner = CliRunner()
    url = postgres.url.replace("/postgres?", "/postgres?application_name=cli&")
    assert runner.invoke(app, ["enroll", "bob", str(ENROLL), "--gallery", url]).exit_code == 0
    listed = runner.invoke(app, ["gallery", "list", "--gallery", url, "--json"])
    assert '"bob": 1' in listed.stdout
    named = runner.invoke(app, ["identify", str(CROP), "--gallery", url, "--json"])
    assert (
        named.exit_code == 0 and '"identity": "unknown"' not in named.stdout
    )  # bob's (or an earlier test's) face
    assert runner.invoke(app, ["gallery", "remove", "bob", "--gallery", url]).exit_code == 0
    down = runner.invoke(app, ["gallery", "list", "--gallery", "postgresql://nobody@/none?host=/nonexistent"])
    assert down.exit_code == 1 and "unavailable" in down.output and "Traceback" not in down.output


def test_an_enrolment_is_all_or_nothing(postgres: Postgres) -> None:
    from srfer.faces.galleries import open_gallery

    with open_gallery(postgres.url, create=True) as one, open_gallery(postgres.url) as other:
        before = dict(other.identities())
        with pytest.raises(Exception):  # noqa: B017 - the database's own error for the NULL source
            one.add("carol", torch.rand(3, 4), ["a.png", None, "c.png"], one.model_id or "m")  # type: ignore[list-item]
        assert dict(other.identities()) == before


def test_the_web_page_in_a_real_browser(server: Server, tmp_path: Path) -> None:
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    require("Chromium and its driver (Debian's chromium and chromium-driver)", bool(browser and driver_path))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    flags = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync")  # fmt: skip
    for flag in (*flags, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(server.url)
        driver.find_element(By.ID, "photo").send_keys(str(SMALL))
        card = WebDriverWait(driver, 60).until(
            ready.presence_of_element_located((By.CLASS_NAME, "face-card"))
        )
        assert "25 px" in card.text and "SR ×8" in card.text and "happy" in card.text
        strip = card.find_element(By.CLASS_NAME, "strip")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", strip) > 0
        assert driver.find_element(By.ID, "annotated").is_displayed()
        driver.find_element(By.ID, "api-key").send_keys("sesame")
        driver.find_element(By.ID, "enrol-name").send_keys("astronaut")
        driver.find_element(By.ID, "enrol-files").send_keys(str(ENROLL))
        driver.find_element(By.ID, "enrol").click()
        WebDriverWait(driver, 60).until(
            ready.text_to_be_present_in_element((By.ID, "gallery"), "astronaut (1)")
        )
        driver.find_element(By.ID, "photo").send_keys(str(CROP))
        WebDriverWait(driver, 60).until(
            ready.text_to_be_present_in_element((By.CLASS_NAME, "identity"), "astronaut (")
        )
        driver.find_element(By.ID, "verify-a").send_keys(str(ENROLL))
        driver.find_element(By.ID, "verify-b").send_keys(str(CROP))
        driver.find_element(By.ID, "verify").click()
        WebDriverWait(driver, 60).until(
            ready.text_to_be_present_in_element((By.ID, "verify-result"), "Same person")
        )
    finally:
        driver.quit()
