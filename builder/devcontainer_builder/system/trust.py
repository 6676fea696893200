"""Extra CA certificates (DEVCONTAINER_CA_BUNDLE), trusted beside the system's by every TLS client the
builder runs: git (http.sslCAInfo, set by git.py from SSL_CERT_FILE), the devcontainer CLI (node:
NODE_EXTRA_CA_CERTS), requests for Coder's API (REQUESTS_CA_BUNDLE) and OpenSSL and Go defaults
(SSL_CERT_FILE). The system bundle and the extra one are joined into one file in the builder's temporary
folder: the root filesystem may be read-only and the builder is not root, so the system store itself is
never changed. The environment allow-lists pass these variables on to the children that need them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import MutableMapping

SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")


def system_bundle() -> bytes:
    for path in SYSTEM_BUNDLES:
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            return handle.read()
    try:
        import certifi  # noqa: PLC0415 - requests' own bundle, where the system has none

        with open(certifi.where(), "rb") as handle:
            return handle.read()
    except (ImportError, OSError):
        return b""


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def trust(extra: str, environ: MutableMapping[str, str]) -> str:
    """Trust the certificates in `extra` (a file's path, or PEM text) from now on, in this process and its
    children; the joined bundle's path."""
    if extra.lstrip().startswith("-----BEGIN"):
        added = extra.encode()
        extra = _written("devcontainer-builder-extra-ca-", added)
    else:
        with open(extra, "rb") as handle:
            added = handle.read()
    joined = _written("devcontainer-builder-ca-", system_bundle().rstrip(b"\n") + b"\n" + added)
    environ.update(SSL_CERT_FILE=joined, REQUESTS_CA_BUNDLE=joined, NODE_EXTRA_CA_CERTS=extra)
    return joined


def _written(prefix: str, content: bytes) -> str:
    """A file in the temporary folder, readable by all (certificates are public; git may run as the
    workspace's user), removed when the builder exits."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".pem")
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(path, 0o644)
    atexit.register(_remove, path)
    return path
