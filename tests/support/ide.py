"""What the editor's tests serve: the admin's mirror of code-server (a plain HTTP server of files, which
a gallery double that speaks what code-server asks an Open VSX
gallery, and .vsix files made on the spot.

Both servers count their requests, so a test can tell that a restart or a rebuild asked nobody.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devcontainer_builder.ide.container import ROOT as IDE_ROOT
from devcontainer_builder.up.additions import volume_name

ROOT = Path(__file__).resolve().parents[2]
PROVISION = ROOT / "tests" / "env" / "code-server.sh"


@dataclass(frozen=True)
class Tarball:
    path: Path
    sha256: str


def code_server_tarball() -> Tarball:
    """The real code-server that provisioning built (tests/env/code-server.sh: cached, so this is quick
    once it has run) and its SHA-256."""
    result = subprocess.run(["bash", str(PROVISION)], capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, f"tests/env/code-server.sh failed:\n{result.stderr[-3000:]}"
    path = Path(result.stdout.strip().splitlines()[-1])
    return Tarball(path, Path(f"{path}.sha256").read_text().split()[0])


@contextlib.contextmanager
def code_server_mirror(folder: Path, host: str) -> Iterator[dict[str, str]]:
    """The admin's mirror of code-server on `host` (folder: an empty place for it), and the templates'
    variables that take the editor from there, with no extensions gallery."""
    tarball = code_server_tarball()
    folder.mkdir(parents=True)
    (folder / tarball.path.name).symlink_to(tarball.path)
    mirror = FileServer(folder, host=host)
    try:
        yield {"ide": "code-server", "ide_source": f"{mirror.base}/{tarball.path.name}",
               "ide_sha256": tarball.sha256, "extensions_gallery": "none"}  # fmt: skip
    finally:
        mirror.stop()


def planned_health_url(plan: dict[str, Any]) -> str:
    """The health check URL of the code_server app a template's plan gives Coder's main agent."""
    (change,) = [c for c in plan["resource_changes"] if c["address"] == "coder_app.code_server[0]"]
    return str(change["change"]["after"]["healthcheck"][0]["url"])


def ide_volume(workspace_folder: Path | str) -> str:
    """The named volume the builder keeps a workspace's code-server and extensions in."""
    return volume_name(str(workspace_folder), IDE_ROOT)


def remove_volumes(*names: str) -> None:
    subprocess.run(["docker", "volume", "rm", "-f", *names], capture_output=True, timeout=120, check=False)


# --- .vsix files ---

MANIFEST = """<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011">
  <Metadata>
    <Identity Language="en-US" Id="{name}" Version="{version}" Publisher="{publisher}" />
    <DisplayName>{name}</DisplayName>
    <Description xml:space="preserve">made by the tests</Description>
    <Properties>
      <Property Id="Microsoft.VisualStudio.Code.Engine" Value="^1.60.0" />
    </Properties>
  </Metadata>
  <Installation><InstallationTarget Id="Microsoft.VisualStudio.Code"/></Installation>
  <Dependencies/>
  <Assets>
    <Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true" />
  </Assets>
</PackageManifest>
"""

CONTENT_TYPES = """<?xml version="1.0" encoding="utf-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
  <Default Extension=".json" ContentType="application/json"/>
  <Default Extension=".vsixmanifest" ContentType="text/xml"/>
</Types>
"""


def package_json(publisher: str, name: str, version: str) -> dict[str, Any]:
    return {"publisher": publisher, "name": name, "version": version, "engines": {"vscode": "^1.60.0"}}


def make_vsix(publisher: str, name: str, version: str) -> bytes:
    """A minimal extension code-server installs: the manifest, the content types, the package.json."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("extension.vsixmanifest", MANIFEST.format(publisher=publisher, name=name, version=version))
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("extension/package.json", json.dumps(package_json(publisher, name, version)))
    return out.getvalue()


def write_vsix(folder: Path, publisher: str, name: str, version: str, filename: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (filename or f"{publisher}.{name}-{version}.vsix")
    path.write_bytes(make_vsix(publisher, name, version))
    path.chmod(0o644)
    return path


# --- servers ---


class _Server:
    def __init__(self, host: str) -> None:
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def note(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FileServer(_Server):
    """The admin's mirror: files under a folder, by path."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        super().__init__(host)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self) -> None:
                server.note("GET", self.path)
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


class GalleryDouble(_Server):
    """An Open VSX-compatible gallery at <base>/vscode/gallery with the extensions added to it: the
    extensionquery POST (flags with 0x200: the latest version only), the assets, and the server's
    update check (/vscode/{publisher}/{name}/latest). An unknown extension has no results."""

    LATEST_ONLY = 0x200

    def __init__(self, host: str) -> None:
        self.packages: dict[str, dict[str, bytes]] = {}  # publisher.name (lower) -> version -> vsix
        super().__init__(host)

    @property
    def service_url(self) -> str:
        return f"{self.base}/vscode/gallery"

    def add(self, publisher: str, name: str, version: str) -> None:
        self.packages.setdefault(f"{publisher}.{name}".lower(), {})[version] = make_vsix(publisher, name, version)

    def gallery_requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.requests)

    def extension(self, ident: str, latest_only: bool) -> dict[str, Any] | None:
        versions = self.packages.get(ident.lower())
        if not versions:
            return None
        publisher, name = ident.split(".", 1)
        ordered = sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")), reverse=True)
        if latest_only:
            ordered = ordered[:1]
        return {
            "extensionId": str(uuid.uuid5(uuid.NAMESPACE_URL, ident.lower())),
            "extensionName": name,
            "displayName": name,
            "shortDescription": "made by the tests",
            "publisher": {
                "publisherId": str(uuid.uuid5(uuid.NAMESPACE_URL, publisher.lower())),
                "publisherName": publisher,
                "displayName": publisher,
            },
            "flags": "validated",
            "statistics": [],
            "versions": [self._version(publisher, name, version) for version in ordered],
        }

    def _version(self, publisher: str, name: str, version: str) -> dict[str, Any]:
        asset = f"{self.base}/vscode/asset/{publisher}/{name}/{version}"
        return {
            "version": version,
            "lastUpdated": "2026-01-01T00:00:00.000Z",
            "assetUri": asset,
            "fallbackAssetUri": asset,
            "files": [
                {
                    "assetType": "Microsoft.VisualStudio.Services.VSIXPackage",
                    "source": f"{asset}/Microsoft.VisualStudio.Services.VSIXPackage",
                },
                {
                    "assetType": "Microsoft.VisualStudio.Code.Manifest",
                    "source": f"{asset}/Microsoft.VisualStudio.Code.Manifest",
                },
            ],
            "properties": [{"key": "Microsoft.VisualStudio.Code.Engine", "value": "^1.60.0"}],
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gallery = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                gallery.note("POST", self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if urlsplit(self.path).path != "/vscode/gallery/extensionquery":
                    self._send(404, b"{}")
                    return
                query = json.loads(body or b"{}")
                flags = int(query.get("flags") or 0)
                found = []
                for item in query.get("filters") or []:
                    for criterion in item.get("criteria") or []:
                        if criterion.get("filterType") == 7:
                            extension = gallery.extension(
                                str(criterion.get("value")), bool(flags & gallery.LATEST_ONLY)
                            )
                            if extension:
                                found.append(extension)
                result = {
                    "results": [
                        {
                            "extensions": found,
                            "pagingToken": None,
                            "resultMetadata": [
                                {
                                    "metadataType": "ResultCount",
                                    "metadataItems": [{"name": "TotalCount", "count": len(found)}],
                                }
                            ],
                        }
                    ]
                }
                self._send(200, json.dumps(result).encode())

            def do_GET(self) -> None:
                gallery.note("GET", self.path)
                parts = urlsplit(self.path).path.strip("/").split("/")
                if len(parts) == 6 and parts[:2] == ["vscode", "asset"]:
                    _, _, publisher, name, version, asset = parts
                    vsix = gallery.packages.get(f"{publisher}.{name}".lower(), {}).get(version)
                    if vsix is None:
                        self._send(404, b"{}")
                    elif asset == "Microsoft.VisualStudio.Services.VSIXPackage":
                        self._send(200, vsix, "application/octet-stream")
                    elif asset == "Microsoft.VisualStudio.Code.Manifest":
                        self._send(200, json.dumps(package_json(publisher, name, version)).encode())
                    else:
                        self._send(404, b"{}")
                    return
                if len(parts) == 4 and parts[0] == "vscode" and parts[3] == "latest":
                    extension = gallery.extension(f"{parts[1]}.{parts[2]}", True)
                    self._send(200 if extension else 404, json.dumps(extension or {}).encode())
                    return
                self._send(404, b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def dotfiles_repository(folder: Path, install_sh: str) -> Path:
    """A bare git repository with install.sh (folder/dotfiles.git)."""
    work = folder / "dotfiles-work"
    work.mkdir(parents=True)
    (work / "install.sh").write_text(install_sh)
    (work / "install.sh").chmod(0o755)
    (work / ".marker-rc").write_text("# from the dotfiles repository\n")
    env = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "dotfiles"]):
        subprocess.run(["git", *env, *args], cwd=work, check=True, capture_output=True, timeout=60)
    bare = folder / "dotfiles.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True, timeout=60)
    return bare
