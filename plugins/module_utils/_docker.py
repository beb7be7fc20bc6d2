# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker client wrapper shared by the appfleet.docker modules.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import docker
    from docker.errors import DockerException

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only where the SDK is absent
    docker = None
    DockerException = Exception
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

# Labels shared by every module: images and containers of an app carry them.
LABEL_PREFIX = "io.appfleet."
LABEL_APP = LABEL_PREFIX + "app"
LABEL_SOURCE_ID = LABEL_PREFIX + "source-id"
LABEL_GIT_COMMIT = LABEL_PREFIX + "git-commit"
LABEL_BUILT_AT = LABEL_PREFIX + "built-at"
LABEL_PREVIOUS_IMAGE = LABEL_PREFIX + "previous-image"
LABEL_CONFIG_HASH = LABEL_PREFIX + "config-hash"

# Options every module takes (documented in doc_fragments/docker.py).
DOCKER_COMMON_ARGS = dict(
    docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
    api_timeout=dict(type="int", default=120),
)


class AppfleetModule(object):
    """AnsibleModule plus a lazily built Docker SDK client.

    Modules call ``run(main_logic)``; Docker SDK errors raised anywhere inside
    become a single ``fail_json`` with a lowercase message.
    """

    def __init__(self, argument_spec, **kwargs):
        spec = dict(DOCKER_COMMON_ARGS)
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        if not HAS_DOCKER:
            self.module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
        self._client = None

    @property
    def params(self):
        return self.module.params

    @property
    def check_mode(self):
        return self.module.check_mode

    @property
    def diff_mode(self):
        return self.module._diff

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = docker.DockerClient(
                    base_url=self.params["docker_host"],
                    timeout=self.params["api_timeout"],
                )
                self._client.ping()
            except DockerException as exc:
                self.fail(
                    "cannot reach the docker engine at %s: %s; is dockerd running and "
                    "is docker_host right?" % (self.params["docker_host"], exc)
                )
        return self._client

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **kwargs)

    def run(self, logic):
        """Call ``logic(self)``; it returns the result dict for exit_json."""
        try:
            result = logic(self)
        except DockerException as exc:
            self.fail("docker engine error: %s" % (exc,), exception=traceback.format_exc())
        self.module.exit_json(**result)
