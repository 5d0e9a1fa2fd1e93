"""A loopback HTTP file server for the download tests: serves a directory with HTTP Range support, records every
request, and can cut a transfer short (once per file) to stand for a dropped connection."""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LoopbackServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.if_range: list[str] = []  # the If-Range headers received
        self.cut_after: dict[str, int] = {}  # path -> bytes to send before dropping the connection (next GET only)
        self.honour_range = True  # False: answer every GET with the whole file (200), as some servers do
        self.send_length = True  # False: no Content-Length (HEAD says nothing; bodies end when the connection closes)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest's output clean
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool):
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                if self.headers.get("If-Range"):
                    server.if_range.append(self.headers["If-Range"])
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
                start, status = 0, 200
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                # If-Range: the range only if the client's validator is still the file's, else the whole file.
                still_same = self.headers.get("If-Range") in (None, etag)
                if match and server.honour_range and still_same:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                chunk = data[start:]
                self.send_response(status)
                self.send_header("ETag", etag)
                if server.send_length:
                    self.send_header("Content-Length", str(len(chunk)))
                else:
                    self.close_connection = True
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                cut = server.cut_after.pop(self.path, None) if self.command == "GET" else None
                if cut is not None:
                    self.wfile.write(chunk[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the client sees the body end early
                    return
                self.wfile.write(chunk)
                if not server.send_length:
                    self.wfile.flush()
                    self.connection.shutdown(2)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def gets(self, suffix: str) -> list[str | None]:
        """The Range headers of the GETs of paths ending in ``suffix`` (None: a whole-file GET)."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith(suffix)]
