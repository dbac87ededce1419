"""Issue 27: a served export answers TF Serving's REST request, tested as the README shows it: `curl`."""

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from shared.serving import rest
from shared.serving.export import export_run
from tests.helpers import jobs, one_error
from tests.readme import commands


def _readme_line(prefix: str) -> str:
    (line,) = [c.line for c in commands() if c.line.startswith(prefix)]
    return line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl here")
def test_the_readme_serves_an_export_and_curl_gets_its_answer(every_model, tmp_path):
    exported = export_run(vol=every_model, model="scratch", seed=1337)
    images = sorted((every_model.subsets / "test").rglob("*.jpg"))[:3]
    assert rest.main([*map(str, images), "--out", str(tmp_path / "body.json")]) == 0
    port = str(_free_port())
    serve = shlex.split(_readme_line("python -m jobs serve").replace("8501", port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATSDOGS_", "KAGGLE_"))}
    proc = subprocess.Popen([sys.executable, *serve[1:], "--data-dir", str(every_model.root)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline, ready = time.monotonic() + 180, False
        while time.monotonic() < deadline and proc.poll() is None and not ready:
            try:
                with direct.open(f"http://127.0.0.1:{port}/v1/models/scratch", timeout=5) as answer:
                    ready = json.loads(answer.read()).get("ready") is True
            except OSError:
                time.sleep(1)
        assert ready, proc.stdout.read() if proc.poll() is not None else "not ready in 180 s"
        curl = shlex.split(_readme_line("curl ").replace("8501", port))
        answer = subprocess.run([*curl, "--silent", "--show-error", "--noproxy", "*"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert answer.returncode == 0, answer.stderr
        predictions = json.loads(answer.stdout)["predictions"]
        import tensorflow as tf

        signature = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
        expected = signature(images=tf.constant([p.read_bytes() for p in images]))
        assert np.allclose([p["p_dog"] for p in predictions], expected["p_dog"].numpy(), atol=1e-6)
        assert [p["label"] for p in predictions] == expected["label"].numpy().tolist()
        bad = subprocess.run([*curl[:1], "--silent", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                              "-d", '{"instances": [{"b64": "eA=="}]}', curl[-1]], capture_output=True, text=True,
                             timeout=60)
        assert bad.stdout == "400"  # bytes that are no image: the client's mistake, said in one line
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.slow
def test_serving_a_run_without_an_export_says_which_command_makes_it(vol):
    error = one_error(jobs(vol, "serve", "--model", "scratch", "--port", str(_free_port())), 3)
    assert "has no export" in error and "catsdogs export --model scratch" in error
