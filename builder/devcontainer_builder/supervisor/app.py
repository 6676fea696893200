"""The supervisor's HTTP side: a small JSON API and the status page, with starlette.

Two doors, one app. The unix socket in the state dir (serve.sock: the `rebuild` and `status` commands)
is trusted: only who can reach the state dir can connect, and a devcontainer never can. The TCP address
(the Coder app) is shared with whatever else runs in its network namespace - on a VM with
DEVCONTAINER_NETWORK=host, the repository's own processes - so there a request changes nothing unless its
path starts with the page's key (`/k/KEY/`, the path Coder's app points at; the page's relative URLs keep
it), and a request without the key must name a loopback host or one of DEVCONTAINER_SERVE_HOSTS (DNS
rebinding). Log streams are counted per door, so local processes without the key cannot crowd out the
page's own stream.

Every input is checked before anything happens: unknown paths 404, other methods 405, state-changing
requests only with `Content-Type: application/json` (a plain HTML form from another site cannot send
that), bodies of at most MAX_BODY bytes, known fields of the right type only - each refusal a JSON
4xx saying why. Nothing in a response is a secret or the environment: the state (which never holds a
secret), the suggestion, the repository's branch and counts, the build log's lines (redacted when they
were written).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from devcontainer_builder.supervisor.status import Supervisor

MAX_BODY = 1024
STREAM_POLL = 0.25  # how often an open log stream looks for new lines and a changed state
HEARTBEAT = 15.0
LINE_CHUNK = 256 * 1024
_CURSOR = re.compile(r"^\d{1,20}:\d{1,20}$")
_BUILD_ID = re.compile(r"^[0-9a-f]{12}$")
_LIMIT = re.compile(r"[0-9]{1,4}")
MAX_STREAMS = 32  # open log streams at once: each is a poll loop
# ... shared out by door: a local process without the key holds at most its own share
STREAM_SHARES = {"page": 16, "cli": 8, "local": 8}
TRUSTED = "dcb.trusted"  # scope keys the doors set
DOOR = "dcb.door"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_LOG_CURSOR = re.compile(r"^(?:[0-9a-f]{12}|-):\d{1,20}$")
PAGE_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
              "style.css": "text/css; charset=utf-8"}  # fmt: skip
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # no other site may frame the page (clickjacking its buttons): the CSP for browsers that know
    # frame-ancestors, X-Frame-Options for the rest
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def problem(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": message, "status": status}, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def ok(data: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=SECURITY_HEADERS)


def no_query(request: Request) -> None:
    if request.query_params:
        raise Refused(400, "this endpoint takes no query parameters")


def single(request: Request, allowed: set[str]) -> None:
    """Only the query parameters an endpoint takes, each at most once."""
    names = [name for name, _ in request.query_params.multi_items()]
    if set(names) - allowed:
        raise Refused(400, f"unknown query parameter; allowed: {', '.join(sorted(allowed))}")
    if len(names) != len(set(names)):
        raise Refused(400, "a query parameter is given more than once")


async def json_body(request: Request, fields: dict[str, type]) -> dict[str, Any]:
    """The request's JSON object, checked: no query, content type and charset, size, syntax, known fields,
    their types."""
    no_query(request)
    media, *parameters = (part.strip().lower() for part in request.headers.get("content-type", "").split(";"))
    if media != "application/json":
        raise Refused(415, "send the body as Content-Type: application/json")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() != "charset" or value.strip().strip('"') not in ("utf-8", "utf8"):
            raise Refused(415, "the body must be UTF-8 JSON (Content-Type: application/json; charset=utf-8 at most)")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise Refused(413, f"the body may be at most {MAX_BODY} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(413, f"the body may be at most {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not valid JSON") from None
    except RecursionError:  # `[[[[...` within MAX_BODY nests deeper than the parser recurses
        raise Refused(400, "the body nests too deeply") from None
    if not isinstance(data, dict):
        raise Refused(400, "the body must be a JSON object")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise Refused(400, f"unknown field(s): {', '.join(unknown)[:200]}; allowed: {', '.join(fields) or 'none'}")
    for name, kind in fields.items():
        if name in data and type(data[name]) is not kind:  # bool is not int, 1 is not True
            raise Refused(400, f"{name} must be a JSON {kind.__name__ if kind is not bool else 'boolean'}")
    return data


def refusing(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as refused:
            return problem(refused.status, refused.message, refused.headers)

    return wrapped


def trusted(request: Request) -> None:
    """State-changing requests come through the unix socket or carry the page's key."""
    if not request.scope.get(TRUSTED):
        raise Refused(
            403,
            "this request changes the workspace and needs the page's key: use the status page through Coder's "
            "app (its address holds the key), or `devcontainer-builder rebuild` in the workspace's terminal",
        )


def create_app(sup: Supervisor) -> Starlette:
    app = Starlette(routes=[*page_routes(), *api_routes(sup)], exception_handlers={HTTPException: _not_found})
    # /api/status/ is a 404 like any unknown path: a redirect would be built from the Host header, and
    # an absolute Location breaks behind Coder's path-based proxy
    app.router.redirect_slashes = False
    return app


def page_routes() -> list[Route]:
    """The status page's files (read once) and the health check."""
    page = {name: resources.files("devcontainer_builder.supervisor").joinpath("page", name).read_bytes()
            for name in PAGE_TYPES}  # fmt: skip

    async def index(request: Request) -> Response:
        return _page(page, "index.html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PAGE_TYPES or name == "index.html":
            return problem(404, "no such file")
        return _page(page, name)

    async def healthz(request: Request) -> Response:
        return ok({"ok": True})

    return [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]


def api_routes(sup: Supervisor) -> list[Route]:
    streams = dict.fromkeys(STREAM_SHARES, 0)  # log streams open now, by door

    @refusing
    async def status(request: Request) -> Response:
        no_query(request)
        return ok(await asyncio.to_thread(sup.status))

    @refusing
    async def events(request: Request) -> Response:
        after, limit = _events_query(request)
        found, cursor = await asyncio.to_thread(sup.dirs.events_after, after, limit)
        return ok({"events": found, "cursor": cursor})

    @refusing
    async def rebuild(request: Request) -> Response:
        trusted(request)
        body = await json_body(request, {"full": bool})
        _rate_limit(sup)
        accepted, build = await asyncio.to_thread(sup.request_rebuild, bool(body.get("full", False)))
        if not accepted:
            return ok({"error": "a build is already running; follow it instead", "build": build}, 409)
        return ok({"build": build}, 202)

    @refusing
    async def ignore(request: Request) -> Response:
        trusted(request)
        body = await json_body(request, {"digest": str})
        done, detail = await asyncio.to_thread(sup.suggestions.ignore, str(body.get("digest", "")))
        if not done:
            raise Refused(409, detail)
        return ok({"ignored": detail})

    @refusing
    async def log(request: Request) -> Response:
        build, follow, start = _log_query(request)
        if build and await asyncio.to_thread(sup.build_phase, build) == "unknown":
            raise Refused(404, "no such build: it is neither running nor the build whose log is kept")
        door = str(request.scope.get(DOOR, "local"))
        if streams[door] >= STREAM_SHARES[door]:
            raise Refused(503, f"{STREAM_SHARES[door]} log streams are open already from here; close one and ask again")
        return StreamingResponse(
            _counted(streams, door, _stream(sup, build, follow, start)),
            media_type="text/event-stream",
            headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
        )

    return [
        Route("/api/status", status, methods=["GET"]),
        Route("/api/events", events, methods=["GET"]),
        Route("/api/log", log, methods=["GET"]),
        Route("/api/rebuild", rebuild, methods=["POST"]),
        Route("/api/suggestion/ignore", ignore, methods=["POST"]),
    ]


def _events_query(request: Request) -> tuple[str | None, int]:
    after = request.query_params.get("after")
    limit_text = request.query_params.get("limit", "100")
    single(request, {"after", "limit"})
    if after is not None and not _CURSOR.match(after):
        raise Refused(400, "after must be the cursor a previous answer gave")
    if not _LIMIT.fullmatch(limit_text) or not 1 <= int(limit_text) <= 1000:
        raise Refused(400, "limit must be a number from 1 to 1000")
    return after, int(limit_text)


def _log_query(request: Request) -> tuple[str, bool, str]:
    """The build (empty: the current one), whether to follow it, and where to start."""
    params = request.query_params
    single(request, {"build", "follow", "from"})
    build = params.get("build", "")
    if build and not _BUILD_ID.match(build):
        raise Refused(400, "build must be a build id (12 hexadecimal digits)")
    follow = params.get("follow", "1")
    if follow not in ("0", "1"):
        raise Refused(400, "follow must be 0 or 1")
    start = params.get("from") or request.headers.get("last-event-id") or ""
    if start and not _LOG_CURSOR.match(start):
        raise Refused(400, "from must be the id of a line a previous answer gave (build:offset)")
    return build, follow == "1", start


def _rate_limit(sup: Supervisor) -> None:
    wait = sup.rebuilds.wait_needed(time.monotonic())
    if wait > 0:
        raise Refused(
            429,
            f"{sup.rebuilds.limit} rebuilds were started in the last {sup.rebuilds.window:.0f} s, the most "
            f"allowed; ask again in {wait} s",
            {"Retry-After": str(wait)},
        )


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "no such endpoint", 405: "method not allowed here"}.get(status, "request refused")
    return problem(status, message)


def _page(page: dict[str, bytes], name: str) -> Response:
    headers = dict(SECURITY_HEADERS, **({"Content-Security-Policy": PAGE_CSP} if name == "index.html" else {}))
    return Response(page[name], media_type=PAGE_TYPES[name], headers=headers)


def _sse(event: str, data: str, event_id: str = "") -> bytes:
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {event}")
    lines += [f"data: {part}" for part in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


async def _stream(sup: Supervisor, build: str, follow: bool, start: str) -> AsyncIterator[bytes]:
    """The build log as Server-Sent Events: `line` (each line; its id, build:offset, is where to resume),
    `reset` (another build's log begins: forget the lines shown), `status` (whenever the state changes),
    `end` (the build asked for is over, with its exit code; or, with follow=0, the log as it is now has
    been sent). Without `build`, the stream follows build.log across builds until the supervisor stops."""
    log_of, _, offset_text = start.partition(":")
    offset = int(offset_text) if start else 0
    last_status = ""
    last_beat = asyncio.get_running_loop().time()
    while not sup.stop.is_set():
        summary = json.dumps(await asyncio.to_thread(sup.status_summary), sort_keys=True)
        if summary != last_status:
            last_status = summary
            yield _sse("status", summary)
        phase = await asyncio.to_thread(sup.build_phase, build) if build else ""
        if phase == "unknown":  # a newer build's log has replaced the one followed
            yield _sse("end", json.dumps(await asyncio.to_thread(sup.build_end, build)))
            return
        if phase != "pending":
            current = await asyncio.to_thread(sup.dirs.build_log_id) or "-"
            if current != log_of:
                if log_of:
                    yield _sse("reset", json.dumps({"reason": "another build's log", "build": current}))
                log_of, offset = current, 0
            data = await asyncio.to_thread(_read, sup.dirs.build_log, offset)
            complete = data[: data.rfind(b"\n") + 1]
            for raw in complete.splitlines(keepends=True):
                offset += len(raw)
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if _shown(text):
                    yield _sse("line", text, f"{log_of}:{offset}")
            if len(data) == LINE_CHUNK:
                continue  # more to send at once
        if (build and phase == "ended") or not follow:
            yield _sse("end", json.dumps(await asyncio.to_thread(sup.build_end, build) if build else {"build": None}))
            return
        now = asyncio.get_running_loop().time()
        if now - last_beat >= HEARTBEAT:
            last_beat = now
            yield b": keep-alive\n\n"
        await asyncio.sleep(STREAM_POLL)


async def _counted(streams: dict[str, int], door: str, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    streams[door] += 1
    try:
        async for chunk in stream:
            yield chunk
    finally:
        streams[door] -= 1


def over_unix(app: ASGIApp) -> ASGIApp:
    """The unix socket's door: trusted (reaching the socket means reaching the state dir)."""

    async def door(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, TRUSTED: True, DOOR: "cli"} if scope["type"] == "http" else scope, receive, send)

    return door


def over_tcp(app: ASGIApp, key: str, hosts: tuple[str, ...]) -> ASGIApp:
    """The TCP address's door: `/k/KEY/...` is the page (trusted, the key taken off the path); anything
    else is read-only and must name an allowed host."""
    allowed = {name.lower() for name in (*LOOPBACK_HOSTS, *hosts)}

    async def door(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith("/k/"):
            given, slash, rest = path[3:].partition("/")
            if not slash or not hmac.compare_digest(given.encode(), key.encode()):
                await problem(403, "not the page's key: open the status page through Coder's app")(scope, receive, send)
                return
            await app({**scope, "path": "/" + rest, "raw_path": ("/" + rest).encode(), TRUSTED: True, DOOR: "page"},
                      receive, send)  # fmt: skip
            return
        if _host_name(scope) not in allowed and path != "/healthz":  # health says nothing: any probe may ask
            message = (
                "this supervisor does not answer to that Host; use a loopback name or one of DEVCONTAINER_SERVE_HOSTS"
            )
            await problem(421, message)(scope, receive, send)
            return
        await app({**scope, TRUSTED: False, DOOR: "local"}, receive, send)

    return door


def _host_name(scope: Scope) -> str:
    """The Host header's name, without the port (an IPv6 address without its brackets); "" when absent."""
    values = [value for name, value in scope.get("headers", []) if name == b"host"]
    if len(values) != 1:
        return ""
    host = bytes(values[0]).decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _shown(line: str) -> bool:
    """The page and the API show what the terminal shows (info and above): build.log keeps the debug and
    trace lines, where the devcontainer CLI writes probes of the container's environment."""
    level = line.split(" ", 2)[1] if line.count(" ") >= 2 else ""
    return level not in ("debug", "trace")


def _read(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(LINE_CHUNK)
    except OSError:
        return b""
