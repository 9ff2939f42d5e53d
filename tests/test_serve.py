"""`srfer serve`, in process (FastAPI's TestClient): every endpoint answers as the Python API
does, and every bad request gets its status and a one-line JSON error."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from srfer.serve.app import create_app
from srfer.serve.options import ServeOptions

ROOT = Path(__file__).resolve().parent.parent
PHOTO, SMALL = ROOT / "examples" / "astronaut.png", ROOT / "examples" / "astronaut_small.png"
CROP, ENROLL = (
    ROOT / "examples" / "faces" / "astronaut_face_32.png",
    ROOT / "examples" / "gallery" / "astronaut_128.png",
)
KEY = {"X-API-Key": "sesame"}
pytestmark = pytest.mark.slow  # the shipped networks, loaded once per server


def upload(path: Path, field: str = "image") -> dict:
    return {field: (path.name, path.read_bytes(), "image/png")}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    gallery = tmp_path_factory.mktemp("serve") / "staff.sqlite"
    key_file = gallery.with_name("key")
    key_file.write_text("sesame\n")
    app = create_app(ServeOptions(gallery=str(gallery), api_key_file=key_file, max_upload_mb=2.0))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_error(response, status: int, words: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and words in body["error"] and "Traceback" not in body["error"], body


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "models": "loaded", "gallery": "ok"}
    client.post("/v1/analyze", files=upload(PHOTO))
    text = client.get("/metrics").text
    assert 'srfer_requests_total{endpoint="/v1/analyze",status="200"}' in text
    assert (
        "srfer_request_seconds_bucket" in text and "srfer_queue_depth" in text and "srfer_faces_total" in text
    )
    assert client.get("/openapi.json").json()["info"]["title"] == "srfer"


def test_analyze_answers_as_the_python_api(client: TestClient) -> None:
    import srfer

    body = client.post("/v1/analyze", files=upload(SMALL)).json()
    (face,) = srfer.analyze(SMALL)
    assert body["image"] == "astronaut_small.png" and body["size"] == [123, 123]
    # the server has a gallery, so an embedder: what it answers about identity is its own
    named = ("identity", "nearest", "distance", "threshold", "alignment", "identity_sr")
    ours = {k: v for k, v in face.to_dict().items() if k not in named}
    assert ours == {k: v for k, v in body["faces"][0].items() if k not in named} | {"image": str(SMALL)}
    pictures = client.post("/v1/analyze?pictures=true", files=upload(SMALL)).json()
    assert pictures["annotated"].startswith("data:image/png;base64,")
    assert pictures["faces"][0]["strip"].startswith("data:image/png;base64,")  # a 25 px face: SR'd


def test_verify_upscale_enhance(client: TestClient) -> None:
    verdict = client.post("/v1/verify", files={**upload(PHOTO, "a"), **upload(CROP, "b")}).json()
    assert verdict["same"] is True and [f["image"] for f in verdict["faces"]] == [
        "astronaut.png",
        "astronaut_face_32.png",
    ]
    assert verdict["decided_by"] == "head"  # a 32 px face: the learned head decides
    by_tau = client.post("/v1/verify?head=tau", files={**upload(PHOTO, "a"), **upload(CROP, "b")}).json()
    assert by_tau["decided_by"] == "tau" and by_tau["probability"] is None
    bad = client.post("/v1/verify?head=maybe", files={**upload(PHOTO, "a"), **upload(CROP, "b")})
    assert_error(bad, 422, "--head 'maybe'")
    big = client.post("/v1/upscale?model=x8", files=upload(CROP))
    assert big.headers["content-type"] == "image/png" and Image.open(io.BytesIO(big.content)).size == (
        256,
        256,
    )
    photo = client.post("/v1/enhance?scale=2", files=upload(SMALL))
    assert Image.open(io.BytesIO(photo.content)).size == (246, 246) and photo.headers["x-srfer-faces"] == "1"


def test_the_gallery_needs_the_key_to_write(client: TestClient) -> None:
    assert_error(client.post("/v1/gallery/astronaut", files=upload(ENROLL, "images")), 401, "API key")
    wrong = {"X-API-Key": "open sesame"}
    assert_error(client.post("/v1/gallery/astronaut", files=upload(ENROLL, "images"), headers=wrong), 401)
    enrolled = client.post("/v1/gallery/astronaut", files=upload(ENROLL, "images"), headers=KEY)
    assert enrolled.json() == {"name": "astronaut", "added": 1}
    assert client.get("/v1/gallery").json() == {"identities": {"astronaut": 1}}
    named = client.post("/v1/analyze", files=upload(SMALL)).json()["faces"][0]
    assert named["identity"] == "astronaut" and named["distance"] < named["threshold"]
    matches = client.post("/v1/gallery/identify", files=upload(CROP, "images")).json()["matches"]
    assert matches[0]["name"] == "astronaut" and matches[0]["image"] == "astronaut_face_32.png"
    assert_error(client.delete("/v1/gallery/astronaut"), 401)
    assert_error(client.delete("/v1/gallery/nobody", headers=KEY), 404, "nobody")
    for bad in ("bad..name", "%20padded", "x" * 65):
        assert_error(
            client.post(f"/v1/gallery/{bad}", files=upload(ENROLL, "images"), headers=KEY), 422, "name"
        )
    assert_error(client.post("/v1/gallery/..%2F..%2Fetc", files=upload(ENROLL, "images"), headers=KEY), 404)
    assert client.delete("/v1/gallery/astronaut", headers=KEY).json() == {"name": "astronaut", "removed": 1}


def test_bad_uploads_get_their_status_and_one_line(client: TestClient, tmp_path: Path) -> None:
    full = (ROOT / "examples" / "astronaut.png").read_bytes()
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    cases = {
        "notes.png": (b"a text file", 422, "not an image"),
        "truncated.png": (full[: len(full) // 3], 422, "corrupt or truncated"),
        "empty.png": (b"", 422, "empty"),
        "huge.png": (b"\0" * 2_100_000, 413, "upload limit"),
        "bomb.png": (bomb.read_bytes(), 413, "limit"),
    }
    for name, (data, status, words) in cases.items():
        assert_error(client.post("/v1/analyze", files={"image": (name, data, "image/png")}), status, words)
    tiny = io.BytesIO()
    Image.new("RGB", (5, 5)).save(tiny, format="PNG")
    assert_error(client.post("/v1/analyze", files={"image": ("five.png", tiny.getvalue())}), 422, "too small")
    assert_error(client.post("/v1/analyze"), 422, "image")
    assert_error(client.post("/v1/upscale?model=bigger", files=upload(CROP)), 422, "model")
    assert_error(client.post("/v1/enhance?scale=3", files=upload(SMALL)), 422, "scale")
    assert_error(client.get("/v1/nothing-here"), 404)


def test_writes_are_refused_without_a_key_and_reads_can_be_protected(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SRFER_API_KEY", raising=False)
    options = ServeOptions(gallery=str(tmp_path / "g.sqlite"), cors_origin=["http://example.org"])
    with TestClient(create_app(options), raise_server_exceptions=False) as client:
        assert_error(
            client.post("/v1/gallery/bob", files=upload(ENROLL, "images"), headers=KEY), 403, "disabled"
        )
        allowed = client.get("/health", headers={"Origin": "http://example.org"})
        assert allowed.headers["access-control-allow-origin"] == "http://example.org"
    monkeypatch.setenv("SRFER_API_KEY", "sesame")
    with TestClient(create_app(ServeOptions(protect_reads=True)), raise_server_exceptions=False) as client:
        assert_error(client.post("/v1/analyze", files=upload(CROP)), 401)
        assert client.post("/v1/analyze", files=upload(CROP), headers=KEY).status_code == 200
        assert (
            "access-control-allow-origin"
            not in client.get("/health", headers={"Origin": "http://x.org"}).headers
        )
        assert_error(client.get("/v1/gallery", headers=KEY), 404, "no gallery")


def test_a_full_queue_answers_503_at_once() -> None:
    from srfer.serve.pool import InferencePool, Overloaded

    pool, gate = InferencePool(threads=1, queue=0), threading.Event()

    async def scenario() -> None:
        first = asyncio.ensure_future(pool.run(gate.wait, 10))
        await asyncio.sleep(0.05)
        assert pool.depth == 1
        with pytest.raises(Overloaded):
            await pool.run(lambda: None)
        gate.set()
        assert await first is True and pool.depth == 0

    asyncio.run(scenario())
    pool.close()
