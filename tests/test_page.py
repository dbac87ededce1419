"""Issue 18: reports/index.html in a real browser (Debian's headless Chromium, driven by selenium).

Skipped where Chromium or its driver is missing, unless CATSDOGS_REQUIRE_BROWSER=1 (`.ci/run` installs both
and sets it). CATSDOGS_SCREENSHOT=PATH also copies the screenshot there (the README's).
"""

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from shared.core.seeds import DEFAULT_SEED
from shared.data.split import SplitConfig, split
from shared.orchestration.learning import LearningConfig, learning_curve
from shared.orchestration.mnist import run_mnist
from shared.orchestration.reporting import EvaluateConfig, evaluate
from shared.reports.summary import HEADER, table_rows, warnings
from shared.training.catalog import ModelName
from shared.training.mnist import MnistConfig
from shared.training.train import TrainConfig, train
from shared.volume.layout import Volume
from tests.browser import BROWSER, DRIVER

REQUIRED = os.environ.get("CATSDOGS_REQUIRE_BROWSER") == "1"


RUNS = [(ModelName.scratch, 80, DEFAULT_SEED), (ModelName.scratch, 80, 1),
        (ModelName.feature_extraction, 32, DEFAULT_SEED), (ModelName.feature_extraction, 32, 1),
        (ModelName.scratch_augmented, 80, DEFAULT_SEED)]


@pytest.fixture(scope="module")
def chapter(fetched_template, tmp_path_factory) -> Volume:
    """Two seeds of two models, one of a third, and the MNIST convnet: every section of the page."""
    root = tmp_path_factory.mktemp("page") / "volume"
    shutil.copytree(fetched_template, root)
    split(config=SplitConfig(data_dir=root, train=10, validation=5, test=5))
    for model, size, seed in RUNS:
        train(config=TrainConfig(data_dir=root, model=model, epochs=2, image_size=size, batch_size=8,
                                 weights="none", seed=seed))
    run_mnist(config=MnistConfig(data_dir=root, source="synthetic", samples=300, epochs=1))
    evaluate(config=EvaluateConfig(data_dir=root))
    learning_curve(config=LearningConfig(  # the section after it; it rewrites the page
        template=TrainConfig(data_dir=root, model=ModelName.scratch, epochs=1, image_size=80, batch_size=8),
        sizes=(4, 10), seeds=(DEFAULT_SEED,), models=(ModelName.scratch,)))
    return Volume(root)


def test_the_page_is_self_contained_and_says_what_the_markdown_says(chapter):
    page = (chapter.reports / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and 'src="data:image/png;base64,' in page
    assert "scratch, all 2 runs" in page and "the whole chapter" in page  # cost per model and in all
    summary = (chapter.reports / "summary.md").read_text()
    from shared.orchestration.reporting import evaluate as again

    rows = again(config=EvaluateConfig(data_dir=chapter.root))
    lines = warnings(rows)
    assert any("SYNTHETIC" in line for line in lines) and any("not the book's transfer learning" in w for w in lines)
    for line in lines:
        assert f"> **{line}**" in summary
        assert line.replace("'", "&#x27;") in page


def test_the_page_tells_each_model_s_story(chapter):
    """Issue 28: what every model shares in one line, per model its parameters, augmentation preview (if it
    augments) and explained mistakes; a single run's interval is its Wilson interval; the title names the data."""
    from shared.reports.page import split_columns
    from shared.reports.summary import SPREAD, model_row
    from shared.training.catalog import SPECS, spec

    page = (chapter.reports / "index.html").read_text()
    title = page[page.index("<h1>") + 4:page.index("</h1>")]
    assert "generated stand-in" in title and "seed 0" not in title and f"{len(SPECS)} convnets" in title
    trained = Counter(model.value for model, _, _ in RUNS)
    assert page.count('class="parameters"') == len(trained)
    for name in trained:
        augments = (chapter.reports / name / "augmentation.png").is_file()
        assert augments == (name == ModelName.scratch_augmented.value)  # of the trained, only it augments
        assert f'alt="{name}: augmentation"' in page if augments else f'alt="{name}: augmentation"' not in page
    assert page.count("with their Grad-CAM heat maps, seed ") == len(trained)  # one caption each
    split_manifest = json.loads(chapter.split_manifest.read_text())
    rows = [model_row(chapter, s, split_manifest, {}, {}) for s in SPECS.values()]
    columns, same = split_columns(rows)
    assert {h for h, _ in same} >= {"test images", "compute", "split"} and "weights" in columns  # scratch vs VGG16
    assert '<p id="shared">Every model here: test images <strong>10</strong>' in page
    single = next(r for r in rows if r["model"] == ModelName.scratch_augmented.value)
    cells = dict(zip(HEADER, table_rows([single])[0], strict=True))
    low, high = single["runs"][0]["accuracy_ci95"]
    assert cells[SPREAD] == f"{100 * low:.1f}%–{100 * high:.1f}% (95%, Wilson)" and low < high
    assert single["book_mark"] == ("above" if spec(single["model"]).book_accuracy > high else
                                   "below" if spec(single["model"]).book_accuracy < low else "inside")


def test_the_augmentation_preview_is_the_same_picture_for_every_seed():
    """Each seed's run augments with its own random state; the preview draws with one fixed seed, so two
    evaluations writing reports/<model>/augmentation.png at once write the same bytes."""
    from shared.reports.augmentation import augmentation_png
    from shared.training.models import build_feature_extraction_augmented, build_scratch, build_scratch_augmented

    image = np.random.default_rng(0).uniform(0, 255, (64, 64, 3))
    first, second = (augmentation_png(model=build_scratch_augmented(image_size=80, seed=s), image=image, title="t")
                     for s in (1, 2))
    assert first and first == second
    assert augmentation_png(model=build_feature_extraction_augmented(image_size=64, weights=None, seed=3),
                            image=image, title="t") == first  # the same layers, the same preview
    assert augmentation_png(model=build_scratch(image_size=80), image=image, title="t") is None


@pytest.mark.slow
@pytest.mark.skipif(not (BROWSER and DRIVER) and not REQUIRED, reason="no chromium and chromedriver here")
def test_the_page_in_headless_chromium(chapter, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.browser import chromium

    with chromium() as driver:
        driver.get((chapter.reports / "index.html").resolve().as_uri())  # from the file system, no server
        images = driver.find_elements(By.TAG_NAME, "img")
        # the all-models figure, then per model: curves, confusion matrix, explained mistakes; one augmentation;
        # the learning curve
        assert len(images) >= 1 + 3 * 3 + 1 + 1
        widths = [driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth;", img)
                  for img in images]
        assert all(isinstance(w, int) and w > 0 for w in widths), widths
        rows = driver.find_elements(By.CSS_SELECTOR, "#comparison tbody tr")
        assert [r.get_attribute("data-model") for r in rows] == [m.value for m in ModelName]
        trained = Counter(model.value for model, _, _ in RUNS)
        assert {r.get_attribute("data-model"): r.get_attribute("data-n") for r in rows} == {
            m.value: str(trained[m.value]) for m in ModelName}
        assert "not trained" in rows[-1].text
        assert driver.find_elements(By.CSS_SELECTOR, "#cost tbody tr")  # and the cost table has runs
        assert "Every model here" in driver.find_element(By.ID, "shared").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "p.parameters")) == len(trained)
        section = driver.find_element(By.ID, "learning-curve")
        assert section.text == "How much data each model needs"
        curve = driver.find_element(By.CSS_SELECTOR, 'img[alt="test accuracy by training images, every model"]')
        assert driver.execute_script("return arguments[0].naturalWidth;", curve) > 0
        assert driver.find_elements(By.CSS_SELECTOR, "#mnist tbody tr")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        shot = tmp_path / "index.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("CATSDOGS_SCREENSHOT"):
            shutil.copyfile(shot, Path(os.environ["CATSDOGS_SCREENSHOT"]))


@pytest.mark.slow
def test_make_tensorboard_serves_every_run_by_model_and_seed(chapter):
    import json
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(["make", "-C", str(root), "tensorboard", f"DATA_DIR={chapter.root}",
                             f"TENSORBOARD_PORT={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    wanted = {"scratch/seed-1337/logs/train", "scratch/seed-1/logs/validation", "feature-extraction/seed-1/logs/train"}
    runs, last = [], None
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and not wanted <= set(runs):
            try:
                with direct.open(f"http://localhost:{port}/data/runs", timeout=5) as answer:
                    runs = json.loads(answer.read())
            except OSError as e:
                last = e
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert wanted <= set(runs), (runs, last, err[-1500:])
