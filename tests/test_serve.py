"""``faceptor serve``: the real server in a subprocess, spoken to over HTTP. Its records equal ``faceptor
predict``'s, a photo's answer does not depend on what it was batched with, every kind of bad input is a 4xx
JSON error (never a 500) after which the service still answers, and in-flight requests finish on SIGTERM."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
import numpy as np
import pytest
import skimage.data
from PIL import Image

from faceptor_core.cli import main
from faceptor_core.photo import prediction_schema
from tests.conftest import tiny_build
from tests.test_cli_predict import bomb_png

ROOT = Path(__file__).resolve().parents[1]
KEY = "s3cret-key"
TASKS = ["landmarks_300w", "parsing_lapa", "age_morph2", "recognition_ms1mv3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    """A server process's environment: this checkout importable, one thread, no API key from the caller."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    env.pop("FACEPTOR_API_KEY", None)
    return env


def wait_ready(proc: subprocess.Popen, port: int, log: Path, name: str = "server") -> None:
    """Until ``/readyz`` answers 200; fails the test, with the log, when the process exits or 120 s pass."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{name} did not get ready: {log.read_text()}")


def start_server(checkpoint: str, port: int, *args: str, log: Path) -> subprocess.Popen:
    env = server_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faceptor_core.cli",
            "serve",
            checkpoint,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_ready(proc, port, log)
    return proc


def stop_server(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("serve") / "ckpt"
    tiny_build(TASKS).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    proc = start_server(
        checkpoint,
        port,
        "--max-batch",
        "8",
        "--max-wait-ms",
        "300",
        "--max-upload-mb",
        "1",
        "--max-photos",
        "4",
        "--max-faces",
        "3",
        "--api-key",
        KEY,
        log=log,
    )
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=120) as client:
        yield client
    stop_server(proc)


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    face = skimage.data.astronaut()
    return {
        "astronaut.jpg": jpeg(face),
        "mirror.jpg": jpeg(np.ascontiguousarray(face[:, ::-1])),
        "small.jpg": jpeg(np.asarray(Image.fromarray(face).resize((300, 300)))),
        "cat.jpg": jpeg(skimage.data.chelsea()),
        "coffee.jpg": jpeg(skimage.data.coffee()),
    }


def upload(client: httpx.Client, items: list[tuple[str, bytes]], **data) -> httpx.Response:
    return client.post("/v1/analyze/upload", files=[("photo", (n, b, "image/jpeg")) for n, b in items], data=data)


def assert_close(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=2e-3, rel=1e-4), where
    else:
        assert a == b, where


def faces_of(record: dict) -> list[dict]:
    return record["faces"]


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


# -- answers ------------------------------------------------------------------------------------------------
def test_records_equal_faceptor_predict(server, photos, checkpoint, tmp_path, capsys):
    names = ["astronaut.jpg", "cat.jpg", "small.jpg"]
    for n in names:
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / n).write_bytes(photos[n])
    assert (
        main(
            [
                "predict",
                str(tmp_path / "in"),
                "--checkpoint",
                checkpoint,
                "--out",
                str(tmp_path / "out"),
                "--no-overlay",
            ]
        )
        == 0
    )
    capsys.readouterr()
    r = upload(server, [(n, photos[n]) for n in names])
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    validator = jsonschema.Draft202012Validator(prediction_schema())
    for n, rec in zip(names, records, strict=True):
        validator.validate(rec)
        expected = json.loads((tmp_path / "out" / (Path(n).stem + ".json")).read_text())
        assert rec["photo"] == {**expected["photo"], "source": n}
        assert rec["faces_from"] == expected["faces_from"] == "yunet"
        assert rec["tasks"] == expected["tasks"]
        assert rec["parsing"].keys() == expected["parsing"].keys()
        assert_close(faces_of(rec), faces_of(expected), n)
    assert len(records[0]["faces"]) == 1 and records[1]["faces"] == []


def test_json_and_upload_give_the_same_records_and_tasks_are_chosen_per_request(server, photos):
    data = photos["astronaut.jpg"]
    a = server.post(
        "/v1/analyze",
        json={
            "photos": [{"data": base64.b64encode(data).decode(), "name": "me.jpg"}],
            "tasks": ["age_morph2", "landmarks_300w"],
            "embeddings": False,
        },
    )
    b = upload(server, [("me.jpg", data)], tasks="age_morph2 landmarks_300w", embeddings="false")
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    ra, rb = a.json()["records"][0], b.json()["records"][0]
    assert set(ra["tasks"]) == {"age_morph2", "landmarks_300w"}
    assert set(ra["faces"][0]["tasks"]) == {"age_morph2", "landmarks_300w"}
    assert_close(ra, rb)


def test_given_faces_skip_detection(server, photos):
    box = [170.0, 60.0, 270.0, 180.0]
    r = server.post(
        "/v1/analyze",
        json={
            "photos": [{"data": base64.b64encode(photos["cat.jpg"]).decode(), "faces": [{"box": box}]}],
            "tasks": ["age_morph2"],
        },
    )
    assert r.status_code == 200, r.text
    rec = r.json()["records"][0]
    assert rec["faces_from"] == "given" and rec["faces"][0]["box"] == box and rec["faces"][0]["source"] == "given"
    assert "age_morph2" in rec["faces"][0]["tasks"]


def test_a_photos_answer_does_not_depend_on_its_batch(server, photos):
    b64 = {n: base64.b64encode(d).decode() for n, d in photos.items()}
    requests = [
        {"photos": [{"data": b64["astronaut.jpg"], "name": "a"}]},
        {"photos": [{"data": b64["mirror.jpg"], "name": "m"}]},
        {"photos": [{"data": b64["small.jpg"], "name": "s"}, {"data": b64["coffee.jpg"], "name": "c"}]},
        {"photos": [{"data": b64["cat.jpg"], "name": "given", "faces": [{"box": [100, 40, 260, 220]}]}]},
        {"photos": [{"data": b64["astronaut.jpg"], "name": "a-age"}], "tasks": ["age_morph2"]},
    ]
    alone = [server.post("/v1/analyze", json=body) for body in requests]
    assert all(r.status_code == 200 for r in alone), [r.text for r in alone]
    batches0, photos0 = metric(server, "faceptor_batch_size_photos_count"), metric(server, "faceptor_photos_total")
    barrier = threading.Barrier(len(requests))

    def send(body):
        barrier.wait()
        return server.post("/v1/analyze", json=body)

    with ThreadPoolExecutor(len(requests)) as pool:
        together = list(pool.map(send, requests))
    assert all(r.status_code == 200 for r in together), [r.text for r in together]
    batches = metric(server, "faceptor_batch_size_photos_count") - batches0
    n = metric(server, "faceptor_photos_total") - photos0
    assert n == 6 and batches < n  # some photos really were analysed together
    for one, many in zip(alone, together, strict=True):
        assert_close(one.json(), many.json())
    assert sum(len(r["faces"]) for r in together[0].json()["records"]) == 1


# -- bad input ----------------------------------------------------------------------------------------------
def tiled(image: np.ndarray) -> np.ndarray:
    return np.concatenate([np.concatenate([image, image], 1)] * 2, 0)


NAMELESS_PART = b"--x\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--x--\r\n"
BAD = {
    "not_an_image": (lambda s, p: upload(s, [("notes.jpg", b"these are not pixels")]), 422),
    "empty_photo": (lambda s, p: upload(s, [("empty.jpg", b"")]), 400),
    "empty_body": (lambda s, p: s.post("/v1/analyze", content=b"", headers={"content-type": "application/json"}), 400),
    "image_too_large": (lambda s, p: upload(s, [("bomb.png", bomb_png())]), 413),
    "too_large": (lambda s, p: upload(s, [("big.bin", os.urandom(3 << 19))]), 413),
    "too_large_chunked": (
        lambda s, p: s.post(
            "/v1/analyze", headers={"content-type": "application/json"}, content=iter([b"{" + b" " * (1 << 19)] * 3)
        ),
        413,
    ),
    "unknown_task": (lambda s, p: upload(s, [("a.jpg", p["astronaut.jpg"])], tasks="age_morhp2"), 422),
    "too_many_faces": (
        lambda s, p: s.post(
            "/v1/analyze",
            json={
                "photos": [{"data": base64.b64encode(p["cat.jpg"]).decode(), "faces": [{"box": [0, 0, 50, 50]}] * 4}]
            },
        ),
        422,
    ),
    "too_many_faces_detected": (lambda s, p: upload(s, [("crowd.jpg", jpeg(tiled(skimage.data.astronaut())))]), 422),
    "invalid_faces": (lambda s, p: upload(s, [("a.jpg", p["astronaut.jpg"])], faces='[[{"box": [9, 9, 1, 1]}]]'), 422),
    "too_many_photos": (lambda s, p: upload(s, [("a.jpg", p["small.jpg"])] * 5), 422),
    "too_many_photos_many": (lambda s, p: upload(s, [("a.jpg", b"x")] * 40), 422),
    "malformed_json": (
        lambda s, p: s.post("/v1/analyze", content=b'{"photos": [', headers={"content-type": "application/json"}),
        400,
    ),
    "malformed_base64": (lambda s, p: s.post("/v1/analyze", json={"photos": [{"data": "not*base64"}]}), 400),
    "invalid_request": (lambda s, p: s.post("/v1/analyze", json={"pictures": []}), 422),
    "unsupported_media_type": (lambda s, p: s.post("/v1/analyze/upload", content=b"x"), 415),
    "malformed_multipart": (
        lambda s, p: s.post(
            "/v1/analyze/upload", headers={"content-type": "multipart/form-data; boundary=x"}, content=NAMELESS_PART
        ),
        400,
    ),
    "unauthorized": (lambda s, p: s.post("/v1/analyze", json={}, headers={"X-API-Key": "wrong"}), 401),
}
CODES = {
    "too_large_chunked": "too_large",
    "too_many_photos_many": "too_many_photos",
    "too_many_faces_detected": "too_many_faces",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_clear_4xx(server, photos, case):
    send, status = BAD[case]
    r = send(server, photos)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == CODES.get(case, case)
    assert err["message"] and "\n" not in err["message"]
    if case == "unknown_task":
        assert "age_morph2" in err["message"]  # the close match is suggested
    if case in ("not_an_image", "image_too_large"):
        assert ("notes.jpg" if case == "not_an_image" else "bomb.png") in err["message"]
    assert server.get("/healthz").json() == {"status": "ok"}


def test_no_key_no_answer_and_the_service_keeps_answering(server, photos):
    for method, path in (("GET", "/v1/model"), ("POST", "/v1/analyze"), ("POST", "/v1/analyze/upload")):
        r = httpx.request(method, str(server.base_url.join(path)), timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(str(server.base_url.join("/v1/model")), headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert r.status_code == 200
    assert upload(server, [("a.jpg", photos["astronaut.jpg"])]).status_code == 200
    assert 'status="500"' not in server.get("/metrics").text


def test_a_slow_or_vanished_client_does_not_hold_the_batch(server, photos):
    host, port = server.base_url.host, server.base_url.port
    slow = socket.create_connection((host, port))
    gone = socket.create_connection((host, port))
    try:
        slow.sendall(
            b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-API-Key: " + KEY.encode() + b'\r\nContent-Length: 100000\r\n\r\n{"photos": ['
        )
        body = json.dumps({"photos": [{"data": base64.b64encode(photos["astronaut.jpg"]).decode()}]}).encode()
        gone.sendall(
            b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-API-Key: "
            + KEY.encode()
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        gone.close()  # leaves before its answer
        t0 = time.monotonic()
        r = upload(server, [("a.jpg", photos["astronaut.jpg"])], tasks="age_morph2")
        assert r.status_code == 200 and len(r.json()["records"][0]["faces"]) == 1
        assert time.monotonic() - t0 < 60
    finally:
        slow.close()
    assert server.get("/readyz").status_code == 200


# -- description --------------------------------------------------------------------------------------------
def test_model_card_openapi_and_metrics(server, photos, checkpoint):
    card = server.get("/v1/model").json()
    assert [t["name"] for t in card["tasks"]] == TASKS
    assert card["input_sizes"] == [32, 64]
    parsing = next(t for t in card["tasks"] if t["name"] == "parsing_lapa")
    assert parsing["label_names"][0] == "background" and parsing["output"] == "segmentation"
    weights = (Path(checkpoint) / "model.safetensors").read_bytes()
    assert card["checkpoint"]["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert card["record_schema"] == {"name": "faceptor.prediction", "version": 1}
    assert {"faceptor", "torch", "fastapi", "uvicorn"} <= set(card["versions"])

    doc = server.get("/openapi.json").json()
    ok = doc["paths"]["/v1/analyze"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    record = upload(server, [("a.jpg", photos["astronaut.jpg"])]).json()
    # the OpenAPI document's answer schema is the record schema: a real answer validates against it
    jsonschema.Draft202012Validator({**ok, "components": doc["components"]}).validate(record)
    with pytest.raises(jsonschema.ValidationError):
        bad = {"records": [{**record["records"][0], "version": "one"}]}
        jsonschema.Draft202012Validator({**ok, "components": doc["components"]}).validate(bad)
    assert server.get("/v1/schema/prediction").json() == prediction_schema()

    text = server.get("/metrics").text
    for name in (
        "faceptor_requests_total",
        "faceptor_batch_size_photos_bucket",
        "faceptor_queue_wait_seconds_count",
        "faceptor_request_latency_seconds_bucket",
    ):
        assert name in text
    assert metric(server, "faceptor_request_latency_seconds_count") >= 1


# -- life cycle ---------------------------------------------------------------------------------------------
def test_sigterm_lets_in_flight_requests_finish(checkpoint, photos, tmp_path):
    port = free_port()
    proc = start_server(checkpoint, port, "--max-wait-ms", "1500", "--no-detect", log=tmp_path / "log")
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                httpx.post,
                f"http://127.0.0.1:{port}/v1/analyze/upload",
                timeout=60,
                files=[("photo", ("a.jpg", photos["small.jpg"], "image/jpeg"))],
            )
            time.sleep(0.7)  # the photo is waiting for its batch
            proc.send_signal(signal.SIGTERM)
            r = pending.result()
        assert r.status_code == 200, r.text
        assert r.json()["records"][0]["faces_from"] == "whole_image"
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        stop_server(proc)


def gunicorn_block() -> str:
    """The gunicorn command of docs/serving.md, as written there."""
    text = (ROOT / "docs" / "serving.md").read_text()
    blocks = [b.split("\n", 1)[1].split("```")[0] for b in text.split("```bash")[1:]]
    (block,) = [b for b in blocks if "gunicorn" in b]
    return block


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs on Unix only")
def test_the_documented_gunicorn_command_serves_and_stops_on_sigterm(checkpoint, photos, tmp_path):
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    block = gunicorn_block()
    assert "/opt/faceptor/faceptor-base" in block
    port, pidfile, log = free_port(), tmp_path / "gunicorn.pid", tmp_path / "gunicorn.log"
    env = server_env(
        GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port} --pid {pidfile}",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    script = block.replace("/opt/faceptor/faceptor-base", checkpoint)
    proc = subprocess.Popen(["bash", "-c", script], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, port, log, "gunicorn")
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/analyze/upload",
            files=[("photo", ("a.jpg", photos["astronaut.jpg"], "image/jpeg"))],
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.json()["records"][0]["faces"], "the documented config detects the astronaut's face"
        os.kill(int(pidfile.read_text()), signal.SIGTERM)  # the master, as systemd or an orchestrator would
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert "Shutting down: Master" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_without_the_extra_says_so_in_one_line(monkeypatch, capsys, checkpoint):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve", checkpoint]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'faceptor[serve]'" in err and "uvicorn" in err


def test_odd_but_valid_photos_are_answered(server):
    def png(array: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG")
        return buf.getvalue()

    grey16 = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 20
    r = server.post(
        "/v1/analyze/upload",
        files=[("photo", ("dot.png", png(np.zeros((1, 1, 3), np.uint8)))), ("photo", ("grey16.png", png(grey16)))],
    )
    assert r.status_code == 200, r.text
    dot, grey = r.json()["records"]
    assert dot["photo"]["width"] == 1 and dot["faces"] == []
    assert (grey["photo"]["width"], grey["photo"]["height"]) == (48, 64)
