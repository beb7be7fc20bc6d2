# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker client wrapper shared by the appfleet.docker modules.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import re
import traceback
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

# The app-name rule is the app model's (pure, read by the roles' filters too).
from ansible_collections.appfleet.docker.plugins.module_utils._app_model import APP_NAME_RE, APP_NAME_RULE

# The Docker SDK (and requests, which it brings) is imported on first use, not with this
# file: appfleet.docker.deploy_state, which runs on every host on every deploy, reads the
# engine through its socket (_engine_socket.py) and would otherwise spend about as much
# CPU importing the SDK as on its whole check. ``from ..._docker import APIError`` and the
# other SDK names below still work: the module-level __getattr__ imports the SDK then.
_SDK_NAMES = ("docker", "APIError", "DockerException", "NotFound", "RequestException",
              "HAS_DOCKER", "DOCKER_IMPORT_ERROR", "HANDLED_ERRORS")
_SDK = {}


def sdk():
    """{name: value} of the Docker SDK names above, importing the SDK on the first call."""
    if _SDK:
        return _SDK
    try:
        import docker
        from docker.errors import APIError, DockerException, NotFound

        found, error = True, None
    except ImportError:  # pragma: no cover - exercised only where the SDK is absent
        docker = None

        class DockerException(Exception):
            """Stands in for the SDK's base error where the SDK is absent."""

        APIError = NotFound = DockerException
        found, error = False, traceback.format_exc()
    try:
        from requests.exceptions import RequestException
    except ImportError:  # pragma: no cover - requests comes with the Docker SDK
        class RequestException(IOError):
            """Stands in for requests' base error where requests is absent."""

    _SDK.update(docker=docker, APIError=APIError, DockerException=DockerException, NotFound=NotFound,
                RequestException=RequestException, HAS_DOCKER=found, DOCKER_IMPORT_ERROR=error,
                # Errors the wrapper turns into a message; anything else is a bug and keeps its traceback.
                HANDLED_ERRORS=(AppfleetError, DockerException, RequestException, EnvironmentError))
    return _SDK


def __getattr__(name):
    """The SDK names of _SDK_NAMES, imported on first use (PEP 562)."""
    if name in _SDK_NAMES:
        return sdk()[name]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# Labels shared by every module: images and containers of an app carry them.
LABEL_PREFIX = "io.appfleet."
LABEL_APP = LABEL_PREFIX + "app"
LABEL_SOURCE_ID = LABEL_PREFIX + "source-id"
LABEL_GIT_COMMIT = LABEL_PREFIX + "git-commit"
LABEL_BUILT_AT = LABEL_PREFIX + "built-at"
# The built-at label's value: UTC, microseconds (now_label, built_at_epoch).
BUILT_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
LABEL_PREVIOUS_IMAGE = LABEL_PREFIX + "previous-image"
LABEL_CONFIG_HASH = LABEL_PREFIX + "config-hash"
# The non-secret desired config as JSON, for diff output.
LABEL_CONFIG = LABEL_PREFIX + "config"

# The one app-name rule of the collection, used by the modules and (through the Jinja test
# appfleet.docker.app_name) by the roles: the name becomes a container name, an image
# repository component, an nginx upstream name and a file name, so lowercase letters, digits,
# '_' and '-', starting with a letter or digit, at most 63 characters. \Z, not $: "$" also
# matches before a trailing newline.


def app_error(option, value):
    """None when ``value`` follows the app-name rule, else a message naming ``option``."""
    if not APP_NAME_RE.match(value or ""):
        return "%s %r is not a valid app name: use %s" % (option, value, APP_NAME_RULE)
    return None


def now_label():
    """The built-at label of an image built now."""
    return datetime.now(timezone.utc).strftime(BUILT_AT_FORMAT)


def built_at_epoch(built_at, created):
    """Seconds since the epoch of an image: its built-at label, else its creation time."""
    if built_at:
        try:
            return datetime.strptime(built_at, BUILT_AT_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            pass
    try:
        return float(created or 0)
    except (TypeError, ValueError):
        return 0.0


# Options every module takes (documented in doc_fragments/docker.py).
DOCKER_COMMON_ARGS = dict(
    docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
    api_timeout=dict(type="int", default=120),
)


class AppfleetError(Exception):
    """The one error of the collection: a message ready for fail_json plus result fields.

    ``msg`` is lowercase and names the app, the step and what to do; ``result``
    holds extra keys for the module result (``changed``, ``removed``, ``build_log`` ...).
    """

    # True for a low-level error (git, nginx, lock) whose message lacks the app and the step:
    # the wrapper prefixes them.
    needs_context = False

    def __init__(self, msg, **result):
        super(AppfleetError, self).__init__(msg)
        self.msg = msg
        self.result = result


def is_not_found(exc):
    """True for docker.errors.NotFound and its subclasses (ImageNotFound ...)."""
    names = sdk()
    return names["HAS_DOCKER"] and isinstance(exc, names["NotFound"])


def api_version_tuple(text):
    """``"1.43"`` -> (1, 43); (0, 0) when unreadable."""
    return tuple(int(p) for p in re.findall(r"[0-9]+", text or "")[:2]) or (0, 0)


def describe_error(exc):
    """What went wrong, in a lowercase phrase, for an error that is not an AppfleetError."""
    if isinstance(exc, AppfleetError):
        return exc.msg
    names = sdk()
    # APIError first: it is a requests HTTPError too, but the engine did answer.
    if isinstance(exc, names["APIError"]):
        return "the docker engine refused it: %s" % (exc.explanation or exc,)
    if isinstance(exc, names["RequestException"]):
        return ("the docker engine did not answer (%s: %s); is dockerd running, or was it "
                "restarting? run again once it answers" % (type(exc).__name__, exc))
    if isinstance(exc, names["DockerException"]):
        return "docker error: %s" % (exc,)
    if isinstance(exc, EnvironmentError):
        where = " (%s)" % exc.filename if getattr(exc, "filename", None) else ""
        return "%s%s; check that path on the host (it must exist and be readable by the module)" % (
            exc.strerror or exc, where)
    return "%s: %s" % (type(exc).__name__, exc)


class AppfleetModule(object):
    """AnsibleModule plus a lazily built Docker SDK client.

    ``docker_sdk=False`` (deploy_state) leaves the SDK unimported until ``client`` is used,
    which then fails as usual when the SDK is absent. ``docker_options=False`` (the engine
    modules, which never talk to the engine's API) leaves out docker_host and api_timeout.

    Modules call ``run(main_logic)``; an AppfleetError, a Docker SDK error, a
    requests error (engine gone or restarting), an OS error or a git error
    raised anywhere inside becomes one ``fail_json`` with a lowercase message
    naming the app (``self.app``) and the step (``self.step``), never a traceback.
    """

    def __init__(self, argument_spec, docker_sdk=True, docker_options=True, **kwargs):
        spec = dict(DOCKER_COMMON_ARGS) if docker_options else {}
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        if docker_sdk:
            self.require_sdk()
        self._client = None
        # Set by the module as it goes: they name the app and the step in a failure message.
        self.app = None
        self.step = None
        # Extra result fields for a failure (changed, removed ...), kept current by the module.
        self.fail_fields = {}

    def require_sdk(self):
        """Fail as modules do when the Docker SDK for Python is absent; else its names."""
        names = sdk()
        if not names["HAS_DOCKER"]:
            self.module.fail_json(msg=missing_required_lib("docker"), exception=names["DOCKER_IMPORT_ERROR"])
        return names

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
            names = self.require_sdk()
            try:
                self._client = names["docker"].DockerClient(
                    base_url=self.params["docker_host"],
                    timeout=self.params["api_timeout"],
                )
                self._client.ping()
            except (names["DockerException"], names["RequestException"]) as exc:
                self.fail("cannot reach the docker engine at %s: %s; is dockerd running and is docker_host "
                          "right?" % (self.params["docker_host"], exc))
        return self._client

    def where(self, app=None):
        """``app web: `` for a well-formed app name (``app``, else the module's), else ''."""
        app = self.app if app is None else app
        return "app %s: " % app if isinstance(app, str) and APP_NAME_RE.match(app) else ""

    def with_app(self, msg, app=None):
        """``msg`` led by the app's name (the one place that writes it), unless it already is.

        ``app``: another app than the module's (image_prune and app_info report on several).
        """
        where = self.where(app)
        return msg if not where or msg.startswith(where) else where + msg

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=self.with_app(msg), **kwargs)

    def warn(self, msg, app=None):
        """A warning led by the app's name, as a failure is."""
        self.module.warn(self.with_app(msg, app))

    def error_message(self, exc):
        """The fail_json message for ``exc``: ``app web: starting the new container failed: ...``.

        Every message names the app; a low-level error (git, nginx, a lock, the engine)
        also names the step it broke, which its own text does not know.
        """
        if isinstance(exc, AppfleetError) and not exc.needs_context:
            return self.with_app(exc.msg)
        step = "%s failed: " % self.step if self.step else ""
        return self.with_app(step + describe_error(exc))

    def run(self, logic):
        """Call ``logic(self)``; it returns the result dict for exit_json."""
        failure = None
        try:
            result = logic(self)
        # Evaluated only when something was raised: a module that never used the SDK
        # imports it here, to tell its errors from a bug.
        except sdk()["HANDLED_ERRORS"] as exc:
            fields = dict(self.fail_fields)
            if isinstance(exc, AppfleetError):
                fields.update(exc.result)
            failure = (self.error_message(exc), fields)
        if failure is not None:
            # Outside the except block: fail_json adds no traceback to an expected failure.
            self.fail(failure[0], **failure[1])
        self.module.exit_json(**result)
