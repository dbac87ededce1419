"""Download the competition through the real `kaggle` client, mapping its failures to exit codes."""

from __future__ import annotations

import contextlib
import io
import os
import random
import time
from pathlib import Path

from shared.core.errors import PermanentError, RetryableError

COMPETITION = "dogs-vs-cats"
RULES_URL = f"https://www.kaggle.com/c/{COMPETITION}/rules"
NO_CREDENTIALS = ("no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, "
                  "or put kaggle.json in ~/.kaggle (or $KAGGLE_CONFIG_DIR); "
                  "or use --source synthetic or --source PATH")


def _quietly(fn, *args, **kwargs):
    # The client prints help and may call exit() while authenticating; neither belongs in our logs.
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _api():
    try:
        api_module = _quietly(__import__, "kaggle.api.kaggle_api_extended", fromlist=["KaggleApi"])
        api = api_module.KaggleApi()
        _quietly(api.authenticate)
    except SystemExit:
        raise PermanentError(NO_CREDENTIALS) from None
    except OSError as e:  # the client creates its config folder at import
        raise PermanentError(f"cannot set up the Kaggle client: {e}") from None
    return api


def _classify(error: Exception) -> Exception:
    """Map a client failure to a permanent or retryable error, with one line for the user."""
    import requests

    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return PermanentError("Kaggle rejected the credentials (HTTP 401): check KAGGLE_USERNAME/KAGGLE_KEY "
                              "or kaggle.json")
    if status == 403:
        return PermanentError(f"Kaggle refused the download (HTTP 403): accept the competition rules at "
                              f"{RULES_URL} with the account whose credentials you use")
    if status == 404:
        return PermanentError(f"Kaggle has no competition {COMPETITION!r} for this account (HTTP 404)")
    if status is not None and (status == 429 or status >= 500):
        return RetryableError(f"Kaggle is unavailable (HTTP {status}); try again later")
    if status is not None:
        return PermanentError(f"Kaggle answered HTTP {status}")
    if isinstance(error, requests.exceptions.ConnectionError):
        text = str(error)
        if any(s in text for s in ("NameResolution", "Failed to resolve", "Connection refused",
                                   "Network is unreachable", "No route to host")):
            return PermanentError("no network: cannot reach Kaggle; use --source synthetic or --source PATH "
                                  "where there is no internet")
    return RetryableError(f"download from Kaggle failed: {type(error).__name__}: {error}")


def download(*, dest_dir: Path, retries: int = 4, backoff_s: float = 2.0, quiet: bool = True) -> Path:
    """Download `dogs-vs-cats.zip` into `dest_dir`, where the client resumes a partial file.

    Retries transient failures (5xx, 429, dropped connections) with exponential backoff,
    `retries` times; permanent ones (credentials, rules, 404, no network) fail at once.
    """
    import requests

    api = _api()
    dest_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            api.competition_download_files(COMPETITION, path=str(dest_dir), quiet=quiet)
            break
        except (requests.exceptions.RequestException, OSError, ValueError) as e:
            error = _classify(e)
            if isinstance(error, PermanentError) or attempt == retries:
                raise error from None
            delay = backoff_s * 2**attempt * (1 + random.random() / 4)
            print(f"{error}; retry {attempt + 1}/{retries} in {delay:.1f}s", flush=True)
            time.sleep(delay)
    out = dest_dir / f"{COMPETITION}.zip"
    if not out.is_file() or os.path.exists(f"{out}.kaggle-partial"):
        raise RetryableError(f"the Kaggle client finished without a complete {out.name}")
    return out
