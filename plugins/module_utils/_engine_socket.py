# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only Docker Engine API calls over the engine's Unix socket, without the Docker SDK.

Private to this collection (leading underscore): not a public API.

appfleet.docker.deploy_state runs on every host on every deploy and only lists the
appfleet containers and images: importing the Docker SDK and requests for that cost
about as much CPU as the rest of its check. A GET of the Engine API over the socket
needs only the standard library. Any other docker_host goes through the SDK client.
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlencode

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError


class EngineSocketError(AppfleetError):
    """The engine did not answer or refused: the wrapper adds the app and the step."""

    needs_context = True


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: the engine's own transport."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def get_json(socket_path, path, query=None, timeout=60):
    """The JSON answer of ``GET path?query`` from the engine at ``socket_path``.

    ``query`` values that are not strings are sent as JSON (the Engine API's ``filters``).
    An engine that does not answer, or answers with an error, raises EngineSocketError.
    """
    params = dict((key, value if isinstance(value, str) else json.dumps(value)) for key, value in (query or {}).items())
    target = path + ("?" + urlencode(params) if params else "")
    conn = _UnixConnection(socket_path, timeout)
    try:
        conn.request("GET", target, headers={"Accept": "application/json"})
        response = conn.getresponse()
        status, body = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise EngineSocketError("cannot reach the docker engine at unix://%s: %s; is dockerd running?"
                                % (socket_path, exc or type(exc).__name__))
    finally:
        conn.close()
    if status != 200:
        text = body.decode("utf-8", "replace").strip()
        raise EngineSocketError("the docker engine answered %d to GET %s: %s" % (status, path, text[:300]))
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise EngineSocketError("the docker engine's answer to GET %s is not JSON: %s" % (path, exc))
