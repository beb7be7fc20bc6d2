"""The one error type and its messages, the app name check, the engine's answers read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests.exceptions
from docker.errors import APIError, ImageNotFound, NotFound

from ansible_collections.appfleet.docker.plugins.module_utils import _docker, _lock, _proxy
from ansible_collections.appfleet.docker.plugins.module_utils._build import BuildFailed
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError, app_error
from ansible_collections.appfleet.docker.plugins.module_utils._git import GitError


class _Wrapper(_docker.AppfleetModule):
    """The wrapper's message logic without an AnsibleModule."""

    def __init__(self, app=None, step=None):  # pylint: disable=super-init-not-called
        self.app = app
        self.step = step


@pytest.mark.parametrize("exc,expected", [
    (requests.exceptions.ConnectionError("Connection aborted"),
     "app web: starting the new container failed: the docker engine did not answer (ConnectionError: "),
    (requests.exceptions.ReadTimeout("read timed out"),
     "app web: starting the new container failed: the docker engine did not answer (ReadTimeout: "),
    (PermissionError(13, "Permission denied", "/srv/ctx/secret.txt"),
     "app web: starting the new container failed: Permission denied (/srv/ctx/secret.txt); check that path"),
    (GitError("fatal: bad object HEAD"),
     "app web: starting the new container failed: git: fatal: bad object HEAD"),
    (APIError("500 Server Error"),
     "app web: starting the new container failed: the docker engine refused it: 500 Server Error"),
])
def test_error_message_names_app_and_step(exc, expected):
    msg = _Wrapper("web", "starting the new container").error_message(exc)
    assert msg.startswith(expected), msg
    assert "Traceback" not in msg


def test_appfleet_error_message_is_kept_with_its_fields():
    exc = AppfleetError("app web: nothing to roll back", changed=False)
    assert _Wrapper("web", "any step").error_message(exc) == "app web: nothing to roll back"
    assert exc.result == {"changed": False}


@pytest.mark.parametrize("app, msg, expected", [
    # The wrapper writes the app's name: a message need not.
    ("web", "dockerfile Dockerfile not found", "app web: dockerfile Dockerfile not found"),
    # Never twice.
    ("web", "app web: nothing to roll back", "app web: nothing to roll back"),
    # A name the module has not accepted (yet) is not echoed; no app, no prefix.
    ("bad name; rm -rf /", "app: 'bad name' is not an app name", "app: 'bad name' is not an app name"),
    (None, "name: required", "name: required"),
])
def test_every_message_names_the_app_once(app, msg, expected):
    wrapper = _Wrapper(app, "checking the input")
    assert wrapper.with_app(msg) == expected
    assert wrapper.error_message(AppfleetError(msg)) == expected


class _Warnings(object):
    """Stands in for AnsibleModule.warn."""

    def __init__(self):
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def test_warnings_name_the_app_as_failures_do():
    wrapper = _Wrapper("web", "any step")
    wrapper.module = _Warnings()
    wrapper.warn("release r1 already serves")
    wrapper.warn("app web: held on release r1")
    # image_prune and app_info warn about another app than the module's (or about every app).
    wrapper.warn("image x not removed", app="api")
    wrapper.warn("release log corrupt", app="bad name")
    assert wrapper.module.warnings == ["app web: release r1 already serves", "app web: held on release r1",
                                       "app api: image x not removed", "release log corrupt"]


ROOT = Path(__file__).resolve().parents[4]
# "app %s: ", "app {name}: ", "app " + name: a message that writes the app's name itself.
HAND_PREFIX = re.compile(r"""["']app (?:%[-0-9]*[sr]|\{[^}]*\}): |["']app ["']\s*\+""")
# The wrapper, the one writer; deploy_state's reasons are data (one line per app), not messages.
PREFIX_OWNERS = ("plugins/module_utils/_docker.py", "plugins/module_utils/_deploy_state.py")


@pytest.mark.parametrize("sample", ['raise AppfleetError("app %s: nothing to roll back" % app)',
                                    "warn('app %r: gone' % name)", 'f"app {self.app}: x"',
                                    'fail("app " + name + ": x")'])
def test_the_prefix_scan_finds_a_hand_written_prefix(sample):
    assert HAND_PREFIX.search(sample)


def test_only_the_wrapper_writes_the_app_prefix():
    """Messages and warnings reach the user through AppfleetModule, which names the app once."""
    found = []
    for top in ("plugins/module_utils", "plugins/modules"):
        for path in sorted((ROOT / top).glob("*.py")):
            rel = str(path.relative_to(ROOT))
            if rel not in PREFIX_OWNERS:
                found += ["%s: %s" % (rel, m.group(0)) for m in HAND_PREFIX.finditer(path.read_text(encoding="utf-8"))]
    assert found == []


def test_error_types_are_the_one_type():
    for cls in (_proxy.ProxyError, _lock.LockTimeout, BuildFailed, GitError):
        assert issubclass(cls, AppfleetError)
    # Every error the wrapper turns into a message.
    for exc in (AppfleetError("x"), requests.exceptions.ConnectionError(), OSError(2, "x"), GitError("x"),
                APIError("x")):
        assert isinstance(exc, _docker.HANDLED_ERRORS)


def test_not_found_by_class():
    assert _docker.is_not_found(ImageNotFound("gone"))
    assert _docker.is_not_found(NotFound("gone"))
    assert not _docker.is_not_found(APIError("500"))
    assert not _docker.is_not_found(ValueError("NotFound"))


@pytest.mark.parametrize("text,expected", [("1.43", (1, 43)), ("1.39", (1, 39)), ("", (0, 0)), ("x", (0, 0))])
def test_api_version_tuple(text, expected):
    assert _docker.api_version_tuple(text) == expected


def test_lock_dir_that_is_a_file_is_an_os_error(tmp_path):
    blocker = tmp_path / "locks"
    blocker.write_text("not a directory")
    with pytest.raises(OSError) as err:
        _lock.AppLock(str(blocker), "web").acquire()
    msg = _Wrapper("web", "taking the lock in %s" % blocker).error_message(err.value)
    assert msg.startswith("app web: taking the lock in %s failed: " % blocker), msg


@pytest.mark.parametrize("app, ok", [("web", True), ("web_1-api", True), ("a" * 63, True), ("Web", False),
                                     ("web.api", False), ("web\n", False), ("a" * 64, False), ("-web", False),
                                     ("web app", False), ("web/x", False), ("", False)])
def test_app(app, ok):
    assert (app_error("app", app) is None) is ok
