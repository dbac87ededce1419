"""A loopback stand-in for the Kaggle API, reached by the real kaggle client through HTTP_PROXY."""

from __future__ import annotations

import email.utils
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOWNLOAD = "/api/v1/competitions.CompetitionApiService/DownloadDataFiles"
FILE_PATH = "/storage/competitions/dogs-vs-cats/dogs-vs-cats.zip"


class FakeKaggle:
    """Answers DownloadDataFiles with a scripted list of error statuses, then a 302 to the archive."""

    def __init__(self, archive: bytes, *, post_errors=(), truncated_gets: int = 0):
        self.archive = archive
        self.post_errors = list(post_errors)
        self.truncated_gets = truncated_gets
        self.log: list[tuple[str, str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _path(self) -> str:  # a proxy sees absolute URLs
                return re.sub(r"^https?://[^/]+", "", self.path)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.log.append(("POST", self._path(), dict(self.headers), body))
                if not self._path().startswith(DOWNLOAD):
                    return self._json(404, {"code": 404, "message": "not found"})
                if fake.post_errors:
                    status = fake.post_errors.pop(0)
                    return self._json(status, {"code": status, "message": f"scripted {status}"})
                self.send_response(302)
                self.send_header("Location", f"http://localhost{FILE_PATH}?token=t")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                fake.log.append(("GET", self._path(), dict(self.headers), b""))
                if not self._path().startswith(FILE_PATH):
                    return self._json(404, {"code": 404, "message": "not found"})
                data, start = fake.archive, 0
                match = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if match:
                    start = int(match.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", '"v1"')
                self.send_header("Last-Modified", email.utils.formatdate(0, usegmt=True))
                self.end_headers()
                if fake.truncated_gets > 0:
                    fake.truncated_gets -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _json(self, status: int, payload: dict):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeKaggle:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
