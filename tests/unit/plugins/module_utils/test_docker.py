"""The one error type and its messages, the app name check, the engine's answers read."""

from __future__ import annotations

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
