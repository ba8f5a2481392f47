"""Local stand-ins for the download servers: a real HTTP server on 127.0.0.1 serving files
the test made. It also answers requests for absolute URLs, as an HTTP proxy does, which is how
clients with a fixed host (the kaggle package) are pointed at it through their own settings."""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

KAGGLE_DOWNLOAD_PATH = "/api/v1/datasets.DatasetApiService/DownloadDataset"


class StandIn:
    """`serve(path, body)` publishes bytes; `hits` lists every path requested."""

    def __init__(self):
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.hits: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _route(self):
                path = urlsplit(self.path).path  # absolute URL when asked as a proxy
                standin.hits.append(path)
                handler = standin.routes.get(path)
                if handler is None:
                    send(self, 404, b'{"code": 404, "message": "Not found"}', "application/json")
                else:
                    handler(self)

            do_GET = do_POST = do_HEAD = _route

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(self, path: str, body: bytes, cut_after: int | None = None) -> None:
        """`cut_after`: announce the full length but close the connection after this many bytes."""
        self.routes[path] = lambda handler: send(handler, 200, body, "application/octet-stream", cut_after)

    def __enter__(self) -> "StandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str,
         cut_after: int | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Last-Modified", formatdate(usegmt=True))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body if cut_after is None else body[:cut_after])
    if cut_after is not None:
        handler.close_connection = True


def serve_kaggle(standin: StandIn, datasets: dict[str, bytes], username: str, key: str) -> None:
    """Kaggle's download API as the kaggle package calls it: POST DownloadDataset with basic
    auth and the slug in a JSON body, answered by a redirect to the archive (as Kaggle
    redirects to its storage); an unknown slug is a 404, wrong credentials a 401."""
    expected_auth = "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()

    def download_dataset(handler: BaseHTTPRequestHandler) -> None:
        request = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        slug = f"{request['ownerSlug']}/{request['datasetSlug']}"
        if handler.headers.get("Authorization") != expected_auth:
            send(handler, 401, b'{"code": 401, "message": "Unauthenticated"}', "application/json")
        elif slug not in datasets:
            send(handler, 404, b'{"code": 404, "message": "Not found"}', "application/json")
        else:
            handler.send_response(302)
            handler.send_header("Location", f"http://localhost/storage/{slug}.zip")
            handler.send_header("Content-Length", "0")
            handler.end_headers()

    standin.routes[KAGGLE_DOWNLOAD_PATH] = download_dataset
    for slug, archive in datasets.items():
        standin.serve(f"/storage/{slug}.zip", archive)


def kaggle_env(standin: StandIn, home: Path, username: str | None, key: str | None) -> dict:
    """Environment for a subprocess: the kaggle package's own switch to a local API host
    (KAGGLE_API_ENVIRONMENT=LOCALHOST, i.e. http://localhost) reached through the stand-in
    as the HTTP proxy (requests honours HTTP_PROXY); a private HOME, so no real credentials."""
    from tests.conftest import python_env

    env = python_env()
    for name in list(env):
        if name.startswith("KAGGLE_") or name.lower() in ("no_proxy", "http_proxy", "https_proxy", "all_proxy"):
            del env[name]
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), KAGGLE_API_ENVIRONMENT="LOCALHOST",
               HTTP_PROXY=standin.url, http_proxy=standin.url)
    if username is not None:
        env.update(KAGGLE_USERNAME=username, KAGGLE_KEY=key)
    return env


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()
