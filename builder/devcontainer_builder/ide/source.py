"""The admin's code-server tarball on the builder's side: a local file, or a download from the release
or the admin's mirror into the state dir, checked against the pinned SHA-256 before anything uses it.
Nothing from the network is run, piped into a shell or trusted before its digest matches."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import urllib3

from devcontainer_builder.log import Log

CHUNK = 1024 * 1024
MAX_BYTES = 2 * 1024 * 1024 * 1024  # a code-server release is ~100-250 MiB
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
DOWNLOAD_TIMEOUT = 900.0


class SourceError(Exception):
    """The tarball could not be had or did not match its digest: no editor, a warning."""


@dataclass(frozen=True)
class Tarball:
    path: str
    downloaded: bool  # a temporary download, removed once copied


def digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def obtain(source: str, sha256: str, folder: str, log: Log, limit: float = DOWNLOAD_TIMEOUT) -> Tarball:
    """The verified tarball: the admin's file itself, or a download into folder within limit seconds (and
    DOWNLOAD_TIMEOUT)."""
    limit = min(limit, DOWNLOAD_TIMEOUT)
    if source.startswith("/"):
        try:
            found = digest(source)
        except OSError as err:
            raise SourceError(f"cannot read {source} ({err.strerror})") from None
        if found != sha256:
            raise SourceError(f"{source} has the SHA-256 {found}, not {sha256} (DEVCONTAINER_IDE_SHA256)")
        return Tarball(source, downloaded=False)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"code-server-{sha256[:16]}.tar.gz")
    partial = path + ".part"
    log.info(f"code-server: downloading {source}")
    started = time.monotonic()
    sha = hashlib.sha256()
    size = 0
    try:
        with requests.get(source, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as answer:
            if answer.status_code != 200:
                raise SourceError(f"{source} answered HTTP {answer.status_code}")
            with open(partial, "wb") as out:
                for chunk in _chunks(answer, started, limit):
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise SourceError(
                            f"{source} is larger than {MAX_BYTES // CHUNK} MiB: not a code-server release"
                        )
                    sha.update(chunk)
                    out.write(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as err:  # read1 raises urllib3's own
        _remove(partial)
        raise SourceError(f"cannot download {source} ({type(err).__name__}: {err})") from None
    except (SourceError, OSError) as err:
        _remove(partial)
        raise SourceError(str(err)) from None
    if sha.hexdigest() != sha256:
        _remove(partial)
        raise SourceError(f"{source} has the SHA-256 {sha.hexdigest()}, not {sha256} (DEVCONTAINER_IDE_SHA256)")
    os.replace(partial, path)
    log.info(f"code-server: {size // CHUNK} MiB in {time.monotonic() - started:.1f} s, SHA-256 verified")
    return Tarball(path, downloaded=True)


def _chunks(answer: requests.Response, started: float, limit: float) -> Iterator[bytes]:
    """The body as it comes, up to the deadline. read1() returns after one receive, each bounded by
    READ_TIMEOUT: iter_content(CHUNK) waits for a whole chunk, so a mirror that sends a byte now and then
    would hold the download for days between two looks at the clock."""
    while True:
        if time.monotonic() - started > limit:
            raise SourceError(f"downloading {answer.url} took longer than {limit:.0f} s")
        chunk = answer.raw.read1(CHUNK, decode_content=True)
        if not chunk:
            return
        yield chunk


def release(tarball: Tarball) -> None:
    if tarball.downloaded:
        _remove(tarball.path)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
