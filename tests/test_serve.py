"""The HTTP API (``fer serve``) on a real uvicorn server on the loopback address: the answers, the refusals
(401, 413, 415, 422, 503), a fuzz corpus through the endpoint, concurrent clients, and equality with
``predict --jsonl``. The fast model where the point is not the model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import SHARED_DATA
from serve_support import analyze, photo_bytes, running_server

from fer_core.model_card import PROJECT_ROOT, ModelCard, default_model_path, fast_model_path
from fer_core.serve.app import ServeConfig, create_app, read_api_keys
from fer_core.serve.engines import LocalEngine
from fer_core.settings import Budgets

PHOTOS = SHARED_DATA / "photos"
SOLVAY = PHOTOS / "solvay_conference_1927.jpg"
SOLVAY_CROP = (0, 700, 1500, 650)  # a dozen faces of the front rows
FAST = {"model": "fast"}


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    """One engine for every server of the module: the models load once."""
    return LocalEngine()


@pytest.fixture(scope="module")
def server(engine):
    with running_server(create_app(engine, ServeConfig(Budgets(), frozenset()))) as base:
        yield base


@pytest.fixture(scope="module")
def photos(astronaut_path) -> dict[str, bytes]:
    if not SOLVAY.is_file():
        pytest.skip(f"{SOLVAY} not found (CI has ../shared/data; a fresh clone may not)")
    return {"astronaut.png": astronaut_path.read_bytes(), "solvay_crop.png": photo_bytes(SOLVAY, SOLVAY_CROP),
            "gauss.png": (PHOTOS / "gauss.png").read_bytes(), "newton.png": (PHOTOS / "newton.png").read_bytes()}


def error_of(response: requests.Response) -> dict:
    body = response.json()
    assert set(body) == {"error", "code"} and body["error"], body
    return body


def test_the_astronaut_photo_gives_one_happy_face(server, astronaut_path):
    response = analyze(server, {"astronaut.png": astronaut_path.read_bytes()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == ModelCard.load(default_model_path()).name
    [image] = body["images"]
    assert image["name"] == "astronaut.png" and image["status"] == "ok" and image["error"] is None
    [face] = image["faces"]
    assert face["label"] == "happy" and face["confidence"] > 0.5
    assert list(face["probabilities"]) == body["labels"]
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-4


def test_a_raw_image_body_gets_the_same_answer_as_a_form_field(server, astronaut_path):
    data = astronaut_path.read_bytes()
    raw = requests.post(f"{server}/v1/analyze", params=FAST, data=data, headers={"Content-Type": "image/png"})
    form = analyze(server, {"astronaut.png": data}, **FAST)
    assert raw.status_code == form.status_code == 200
    assert raw.json()["images"][0]["faces"] == form.json()["images"][0]["faces"]


def test_faces_equal_predict_jsonl_on_the_same_files(server, photos, tmp_path):
    for name, data in photos.items():
        (tmp_path / name).write_bytes(data)
    run = subprocess.run([sys.executable, "-m", "fer_core", "predict", *sorted(map(str, tmp_path.iterdir())),
                          "--jsonl", "--model", str(fast_model_path())],
                         capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    expected = {Path(r["path"]).name: r["faces"] for r in map(json.loads, run.stdout.splitlines())}
    response = analyze(server, photos, **FAST)
    assert response.status_code == 200, response.text
    answered = {image["name"]: image["faces"] for image in response.json()["images"]}
    assert answered == expected
    assert len(answered["solvay_crop.png"]) >= 5  # the many-face case is really many faces


def test_max_faces_keeps_the_largest_faces_in_their_order(server, photos):
    everyone = analyze(server, {"crop.png": photos["solvay_crop.png"]}, **FAST).json()["images"][0]["faces"]
    largest = analyze(server, {"crop.png": photos["solvay_crop.png"]}, max_faces=3, **FAST).json()["images"][0]["faces"]
    areas = sorted((f["box"][2] * f["box"][3] for f in everyone), reverse=True)
    assert [f["face"] for f in largest] == [1, 2, 3]
    assert sorted((f["box"][2] * f["box"][3] for f in largest), reverse=True) == areas[:3]
    assert [f["box"][0] for f in largest] == sorted(f["box"][0] for f in largest)
    kept = {tuple(f["box"]): f["probabilities"] for f in everyone}
    assert all(kept[tuple(f["box"])] == f["probabilities"] for f in largest)


def test_a_label_view_reports_its_own_classes(server, astronaut_path):
    data = {"astronaut.png": astronaut_path.read_bytes()}
    smile = analyze(server, data, scheme="smile", **FAST)
    assert smile.status_code == 200 and smile.json()["labels"] == ["not_happy", "happy"]
    assert smile.json()["images"][0]["faces"][0]["label"] == "happy"
    partial = analyze(server, data, scheme="subset:happy,sad", **FAST)  # no class for the model's other five
    assert partial.status_code == 422 and error_of(partial)["code"] == "invalid_scheme"


def test_one_bad_image_among_several_gets_an_error_row(server, astronaut_path):
    files = [("a.png", astronaut_path.read_bytes()), ("broken.png", b"\x89PNG\r\n\x1a\nnot really"),
             ("b.png", astronaut_path.read_bytes())]
    response = analyze(server, files, **FAST)
    assert response.status_code == 200
    images = response.json()["images"]
    assert [i["name"] for i in images] == ["a.png", "broken.png", "b.png"]
    assert [i["status"] for i in images] == ["ok", "error", "ok"]
    assert images[1]["faces"] == [] and "broken" not in images[1]["error"] and images[1]["error"]
    assert images[0]["faces"] == images[2]["faces"] != []


def test_one_unusable_image_alone_is_a_422_naming_it(server):
    response = analyze(server, {"notes.png": b"hello, I am text"}, **FAST)
    assert response.status_code == 422
    assert error_of(response)["error"].startswith("notes.png: not an image")


def test_classify_arrays_gives_the_probabilities_of_the_detected_face(server, engine, astronaut_path):
    from fer_core.inference.images import decode_image
    from fer_core.inference.pipeline import crop_image_faces
    from fer_core.settings import AnalysisSettings

    settings = AnalysisSettings(model=str(fast_model_path().resolve()), budgets=Budgets())
    crops = crop_image_faces(decode_image(astronaut_path.read_bytes()), engine.analyzer.recognizer(settings))
    batch = np.concatenate([crops.faces, crops.faces[:, :, ::-1]])  # the face and its mirror image
    response = requests.post(f"{server}/v1/classify", params=FAST, json={"faces": batch.tolist()})
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert [i["name"] for i in images] == ["faces[0]", "faces[1]"]
    detected = analyze(server, {"a.png": astronaut_path.read_bytes()}, **FAST).json()["images"][0]["faces"][0]
    assert images[0]["faces"][0]["probabilities"] == detected["probabilities"]
    assert images[1]["faces"][0]["label"] == "happy"


def test_classify_refuses_arrays_that_are_not_48x48_gray(server):
    for faces in ([[[0] * 48] * 47], [[[256] * 48] * 48], [], "face"):
        response = requests.post(f"{server}/v1/classify", params=FAST, json={"faces": faces})
        assert response.status_code == 422, (faces, response.text)
        assert error_of(response)["code"] == "invalid_faces"


def test_classify_images_takes_each_as_one_face(server, astronaut_path):
    response = requests.post(f"{server}/v1/classify", params=FAST, files=[("file", ("a.png", b"\x89PNG")),
                                                                           ("file", ("b.png", photo_bytes(
                                                                               astronaut_path, (177, 66, 95, 95))))])
    assert response.status_code == 200, response.text
    broken, face = response.json()["images"]
    assert broken["status"] == "error" and face["faces"][0]["label"] == "happy"


def test_models_lists_the_shipped_models_with_their_card_figures(server):
    response = requests.get(f"{server}/v1/models")
    assert response.status_code == 200
    models = {m["alias"]: m for m in response.json()["models"]}
    assert set(models) == {"accurate", "fast"}
    for alias, path in {"accurate": default_model_path(), "fast": fast_model_path()}.items():
        card = ModelCard.load(path)
        assert models[alias]["name"] == card.name and models[alias]["accuracy"] == card.validation["accuracy"]


def test_refusals_name_what_was_wrong(server):
    too_many = Budgets().max_images_per_request + 1
    cases = {
        "wrong content type": (415, requests.post(f"{server}/v1/analyze", data=b"x",
                                                  headers={"Content-Type": "text/plain"})),
        "no file field": (422, requests.post(f"{server}/v1/analyze", files={"other": ("a.png", b"x")})),
        "unknown model": (422, analyze(server, {"a.png": b"x"}, model="huge")),
        "unknown detector": (422, analyze(server, {"a.png": b"x"}, detector="eyes")),
        "unknown scheme": (422, analyze(server, {"a.png": b"x"}, scheme="moods")),
        "max_faces 0": (422, analyze(server, {"a.png": b"x"}, max_faces=0)),
        "too many images": (413, analyze(server, [(f"{i}.png", b"x") for i in range(too_many)])),
    }
    for what, (status, response) in cases.items():
        assert response.status_code == status, (what, response.text)
        error_of(response)


def test_budgets_refuse_before_decoding(engine):
    from test_fuzz import png_claiming

    budgets = Budgets(max_request_bytes=20_000, max_image_pixels=1_000_000)
    with running_server(create_app(engine, ServeConfig(budgets, frozenset()))) as base:
        declared = requests.post(f"{base}/v1/analyze", data=b"\0" * 30_000, headers={"Content-Type": "image/png"})
        assert declared.status_code == 413 and error_of(declared)["code"] == "body_too_large"
        chunked = requests.post(f"{base}/v1/analyze", data=iter([b"\0" * 8000] * 4),
                                headers={"Content-Type": "image/png"})  # no Content-Length: counted as it comes
        assert chunked.status_code == 413 and error_of(chunked)["code"] == "body_too_large"
        bomb = analyze(base, {"bomb.png": png_claiming(2000, 2000)}, **FAST)  # 4 megapixels in 100 bytes
        assert bomb.status_code == 413 and "FER_MAX_IMAGE_PIXELS" in error_of(bomb)["error"]
        assert requests.get(f"{base}/healthz").json() == {"status": "ok"}


def test_api_keys_are_needed_when_set(engine, astronaut_path, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# one per line\nk-alpha\n\nk-beta\n")
    assert read_api_keys(keys_file) == {"k-alpha", "k-beta"}
    assert read_api_keys(environ={"FER_API_KEYS": "a, b"}) == {"a", "b"}
    with running_server(create_app(engine, ServeConfig(Budgets(), read_api_keys(keys_file)))) as base:
        data = {"a.png": astronaut_path.read_bytes()}
        for headers in ({}, {"Authorization": "Bearer k-gamma"}, {"X-API-Key": "k-alph"}):
            response = requests.post(f"{base}/v1/analyze", params=FAST, headers=headers,
                                     files=[("file", n_d) for n_d in data.items()])
            assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
            assert error_of(response)["code"] == "unauthorized"
        assert requests.get(f"{base}/v1/models").status_code == 401
        for headers in ({"Authorization": "Bearer k-alpha"}, {"X-API-Key": "k-beta"}):
            assert requests.get(f"{base}/v1/models", headers=headers).status_code == 200
        assert requests.get(f"{base}/healthz").status_code == 200  # probes need no key


def test_a_saturated_server_answers_503_with_retry_after(engine, astronaut_path):
    data = astronaut_path.read_bytes()
    with running_server(create_app(engine, ServeConfig(Budgets(max_in_flight_requests=1), frozenset()))) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as slow:  # a client still sending its image
            slow.sendall(b"POST /v1/analyze?model=fast HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(data) + data[:100])
            deadline = time.monotonic() + 30
            while requests.get(f"{base}/readyz").json()["in_flight"] != 1:
                assert time.monotonic() < deadline, "the slow request never started"
                time.sleep(0.05)
            refused = analyze(base, {"a.png": data}, **FAST)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert error_of(refused)["code"] == "saturated"
            slow.sendall(data[100:])
            reply = slow.recv(65536).split(b"\r\n", 1)[0]
        assert reply == b"HTTP/1.1 200 OK"
        assert analyze(base, {"a.png": data}, **FAST).status_code == 200


def test_a_body_that_does_not_arrive_in_time_gets_408_and_frees_its_slot(engine):
    budgets = Budgets(max_in_flight_requests=1, max_body_seconds=1.0)
    with running_server(create_app(engine, ServeConfig(budgets, frozenset()))) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 1000\r\n\r\n" + b"\0" * 10)
            slow.settimeout(30)
            reply = slow.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"max_body_seconds" in reply
        assert requests.get(f"{base}/readyz").json()["in_flight"] == 0


def test_eight_concurrent_clients_get_the_one_at_a_time_answers(server, photos):
    requests_ = [[(name, data)] for name, data in photos.items()] + [list(photos.items())]
    alone = [analyze(server, files, model="fast", tta="false").json() for files in requests_]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda i: analyze(server, requests_[i % len(requests_)], model="fast", tta="false"),
                                 range(16)))
    assert all(r.status_code == 200 for r in together), [r.text for r in together if r.status_code != 200]
    assert [r.json() for r in together] == [alone[i % len(requests_)] for i in range(16)]


def test_a_fault_of_ours_is_a_500_without_detail(astronaut_path):
    class FailingEngine:
        ready = True

        async def start(self):
            pass

        async def analyze(self, *args, **kwargs):
            raise RuntimeError("secret detail at /srv/internal/path")

    with running_server(create_app(FailingEngine(), ServeConfig(Budgets(), frozenset()))) as base:
        response = analyze(base, {"a.png": astronaut_path.read_bytes()}, **FAST)
    assert response.status_code == 500
    assert error_of(response) == {"error": "internal server error (logged by the server)", "code": "internal"}
    assert "secret" not in response.text and "Traceback" not in response.text


def test_the_fuzz_corpus_gives_4xx_for_refused_files_and_never_5xx(server):
    from conftest import ASTRONAUT
    from test_fuzz import SEED, base_picture, build_corpus

    budgets = Budgets()
    corpus = build_corpus(SEED, base_picture(ASTRONAUT), mutations_per_format=20)
    statuses: dict[int, int] = {}
    for item in corpus:
        expected = expected_status(item, budgets)
        response = analyze(server, {item.name: item.data}, model="fast", tta="false")
        assert response.status_code == expected, (item.name, response.status_code, response.text[:300])
        if expected != 200:
            assert error_of(response)["error"].startswith(f"{item.name}: ")
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses.get(200) and statuses.get(422) and statuses.get(413), statuses
    assert requests.get(f"{server}/healthz").json() == {"status": "ok"}


def expected_status(item, budgets: Budgets) -> int:
    """What the API must answer for one fuzz input alone: 413 over a budget, 422 when the decoder refuses it."""
    from fer_core.inference.images import ImageError, ImageTooLarge, decode_image

    try:
        decode_image(item.data, item.name, budgets)
    except ImageTooLarge:
        return 413
    except ImageError:
        return 422
    return 200


def test_the_openapi_schema_shows_every_endpoint_and_body(server):
    schema = requests.get(f"{server}/openapi.json").json()
    assert {"/v1/analyze", "/v1/classify", "/v1/models", "/healthz", "/readyz"} <= set(schema["paths"])
    analyze_body = schema["paths"]["/v1/analyze"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*"} <= set(analyze_body)
    assert "application/json" in schema["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    models = set(schema["components"]["schemas"])
    assert {"AnalyzeResponse", "ImageResult", "Face", "ErrorResponse", "ModelInfo"} <= models
    assert requests.get(f"{server}/docs").status_code == 200
