"""The app's HTTP side: a small JSON API and the static page, on the standard library's threading server.

Every error a request can cause comes back as ``{"error": "one line"}`` with a 4xx status; anything unexpected is
logged with its traceback and answered with a one-line 500, and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import quote, unquote, urlsplit

from tcig.app.studio import Studio
from tcig.app.uploads import MAX_UPLOAD_BYTES
from tcig.errors import TCIGError

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC = resources.files("tcig.app") / "static"
_JOB = re.compile(r"^/api/jobs/([0-9a-f]{16})(/preview\.png|/outlined/(\d{1,2})\.png|/cancel)?$")


class AppServer(ThreadingHTTPServer):
    """Serves one :class:`Studio`. With ``local_only`` (the default) requests must name a local host, which keeps
    other web sites from reaching the app through DNS rebinding."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], studio: Studio | None = None, local_only: bool = True) -> None:
        self.studio = studio  # may be set after binding, once the models have loaded
        self.local_only = local_only
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: AppServer
    protocol_version = "HTTP/1.1"
    server_version = "tcig-app"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s %s", self.address_string(), format % args)

    # --- routing ------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._post)

    def _get(self, path: str) -> None:
        studio = self.server.studio
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/") :])
        if path == "/api/config":
            return self._json(studio.config())
        if path.startswith("/files/"):
            file = studio.file(path[len("/files/") :])
            if file is None or not file.is_file():
                return self._error(HTTPStatus.NOT_FOUND, "no such result file")
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            return self._send(file.read_bytes(), kind, download=file.name)
        match = _JOB.match(path)
        if match and match.group(2) is None:
            job = studio.job(match.group(1))
            return self._json(studio.queue.status(job))
        if match and match.group(2) and match.group(2).endswith(".png"):
            job = studio.job(match.group(1))
            index = match.group(3)
            if index is None:
                image = job.preview
            else:
                image = job.outlined[int(index)] if int(index) < len(job.outlined) else None
            if image is None:
                return self._error(HTTPStatus.NOT_FOUND, "no such image yet")
            return self._send(image, "image/png")
        return self._error(HTTPStatus.NOT_FOUND, f"nothing at {path[:80]}")

    def _post(self, path: str) -> None:
        body = self._body()  # read first, so that the connection stays usable whatever the answer
        studio = self.server.studio
        routes: dict[str, Callable[[dict], dict]] = {
            "/api/analyze": studio.analyze,
            "/api/layout": studio.load_layout,
            "/api/example": studio.load_example,
            "/api/photo": studio.load_photo,
            "/api/classes": studio.add_class,
            "/api/generate": studio.submit,
        }
        match = _JOB.match(path)
        if match and match.group(2) == "/cancel":
            job = studio.queue.cancel(match.group(1))
            if job is None:
                return self._error(HTTPStatus.NOT_FOUND, "no such run")
            return self._json(studio.queue.status(job))
        if path not in routes:
            return self._error(HTTPStatus.NOT_FOUND, f"nothing at {path[:80]}")
        return self._json(routes[path](body))

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _answer(self, route: Callable[[str], None]) -> None:
        if self.server.local_only and not self._local_host():
            self.close_connection = True  # a body, if any, is left unread
            return self._error(HTTPStatus.FORBIDDEN, "this app answers on localhost only (see tcig app --help)")
        path = unquote(urlsplit(self.path).path)
        try:
            route(path)
        except _RequestError as err:
            self.close_connection = True
            self._error(err.status, str(err))
        except TCIGError as err:
            self._error(HTTPStatus.BAD_REQUEST, str(err).splitlines()[0] if str(err) else type(err).__name__)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # a bug must not take the app down: log it, answer in one line
            logger.exception("%s %s failed", self.command, path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(err).__name__}: {err}"[:300])

    def _local_host(self) -> bool:
        host = self.headers.get("Host", "")
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        return name in LOCAL_HOSTS

    def _body(self) -> dict:
        kind = self.headers.get("Content-Type", "")
        if not kind.startswith("application/json"):
            raise _RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "requests must be JSON")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise _RequestError(HTTPStatus.LENGTH_REQUIRED, "the request has no length") from None
        if length > MAX_UPLOAD_BYTES:
            raise _RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the upload is {length / 2**20:.1f} MiB, over the {MAX_UPLOAD_BYTES >> 20} MiB limit; "
                "load a smaller file",
            )
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _RequestError(HTTPStatus.BAD_REQUEST, "the request is not valid JSON") from None
        if not isinstance(body, dict):
            raise _RequestError(HTTPStatus.BAD_REQUEST, "the request must be a JSON object")
        return body

    def _static(self, name: str) -> None:
        file = STATIC / name
        if "/" in name or name.startswith(".") or not file.is_file():
            return self._error(HTTPStatus.NOT_FOUND, "no such page file")
        self._send(file.read_bytes(), mimetypes.guess_type(name)[0] or "application/octet-stream")

    def _json(self, data: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(data, default=str).encode(), "application/json", status)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": message}, status)

    def _send(self, data: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK, download: str | None = None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if download:
            ascii_name = download.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
            self.send_header(
                "Content-Disposition", f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(download)}"
            )
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
