"""A server on 127.0.0.1 that answers one byte at a time (test helper for total deadlines)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TrickleServer:
    """Answers every GET with 200 and `body`, one byte every `every` seconds: only the body
    (`in_headers=False`, the headers arrive at once) or the headers too. `url` ends in `path`."""

    def __init__(self, body: bytes, *, path: str, every: float, in_headers: bool) -> None:
        stop = self.stop = threading.Event()
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.requests += 1
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
                if not in_headers:
                    self.wfile.write(head)
                    self.wfile.flush()
                for byte in (head if in_headers else b"") + body:
                    if stop.wait(every):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
