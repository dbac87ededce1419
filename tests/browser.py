"""Debian's headless Chromium, driven by selenium with Debian's chromedriver (never a download).

`python -m tests.browser PAGE PNG [WIDTH HEIGHT]` saves a screenshot of a page (the README's).
"""

import contextlib
import os
import shutil
import sys
from pathlib import Path

BROWSER, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@contextlib.contextmanager
def chromium(*, width: int = 1280, height: int = 1600):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for a driver online
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


if __name__ == "__main__":
    page, png, *size = sys.argv[1:]
    with chromium(**dict(zip(("width", "height"), map(int, size), strict=False))) as driver:
        driver.get(Path(page).resolve().as_uri())
        driver.save_screenshot(png)
