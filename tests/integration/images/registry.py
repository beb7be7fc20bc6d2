"""A read-only image registry on 127.0.0.1 for the image_build tests.

It serves one image (busybox from the host's busybox-static, with a label that
makes its id unique to the test) over the registry v2 HTTP API, just enough for
dockerd to pull it: the engine treats 127.0.0.0/8 as an insecure (plain HTTP)
registry, so a ``FROM 127.0.0.1:<port>/afa-test/base:1`` really pulls, with the
API builder and with BuildKit, and no outside registry is needed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import platform
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(platform.machine(), platform.machine())


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_blobs(layer_tar, label):
    """(manifest bytes, {digest: blob}) of a one-layer image; the config digest is its id."""
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps({
        "architecture": ARCH, "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Labels": {"afa.registry": label}},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        "history": [{"created_by": "afa registry test image"}],
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
        "layers": [{"mediaType": LAYER_TYPE, "size": len(layer), "digest": _digest(layer)}],
    }, sort_keys=True).encode()
    return manifest, {_digest(config): config, _digest(layer): layer}


class Registry(object):
    """``with Registry(repo, tag, layer_tar, label) as reg:`` ``reg.ref`` is pullable."""

    def __init__(self, repo, tag, layer_tar, label):
        self.repo, self.tag = repo, tag
        self.manifest, self.blobs = image_blobs(layer_tar, label)
        self.image_id = json.loads(self.manifest)["config"]["digest"]
        self.pulls = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.ref = "127.0.0.1:%d/%s:%s" % (self.server.server_address[1], repo, tag)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        reg = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

            def _send(self, code, body=b"", ctype="application/json", digest=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):  # noqa: N802  (http.server's name)
                path = self.path.split("?")[0]
                base = "/v2/%s/" % reg.repo
                if path == "/v2/":
                    return self._send(200, b"{}")
                if path in (base + "manifests/" + reg.tag, base + "manifests/" + _digest(reg.manifest)):
                    reg.pulls += 1
                    return self._send(200, reg.manifest, MANIFEST_TYPE, _digest(reg.manifest))
                if path.startswith(base + "blobs/") and path[len(base + "blobs/"):] in reg.blobs:
                    dgst = path[len(base + "blobs/"):]
                    return self._send(200, reg.blobs[dgst], "application/octet-stream", dgst)
                return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')

            do_HEAD = do_GET  # noqa: N815

        return Handler
