"""Bad input to the proxy and apps roles fails first, naming the app and the setting.

Same harness as test_role_inputs.py: the role runs against localhost in check
mode, and the run must fail in an input check with nothing changed before it.
"""

from __future__ import annotations

import pytest

from test_role_inputs import assert_refused, run_role

GOOD_APP = {
    "name": "web",
    "source": {"repo": "git@git.example.com:team/web.git", "version": "main"},
    "port": 8080,
    "proxy": {"server_name": "web.example.com"},
    "health": {"path": "/health"},
}


def app(**changes):
    entry = dict(GOOD_APP)
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


APPS_CASES = {
    "name with metacharacters": ([app(name="web;reboot")], ["app web;reboot is invalid"]),
    "uppercase name": ([app(name="Web")], ["app Web is invalid"]),
    "source and image": ([app(image="registry.example.com/web:1")], ["either source (with repo) or image"]),
    "neither source nor image": ([app(source=None)], ["either source (with repo) or image"]),
    "repo with a command": ([app(source={"repo": "git@h:x.git; rm -rf /"})], ["app web is invalid"]),
    "version with a command": ([app(source={"repo": "git@h:x.git", "version": "main$(id)"})],
                               ["app web is invalid"]),
    "port out of range": ([app(port=70000)], ["app web is invalid", "port is 1-65535"]),
    "health path without port": ([app(port=None)], ["set when health.path is"]),
    "unknown strategy": ([app(strategy="yolo")], ["apps_definitions", "strategy"]),
    "unknown key": ([app(enviroment={"A": "1"})], ["apps_definitions", "enviroment"]),
    "duplicate names": ([app(), app()], ["two apps share a name"]),
    "repo that is a git option": ([app(source={"repo": "--upload-pack"})],
                                  ["app web: source.repo starts with '-'"]),
    "version that is a git option": ([app(source={"repo": "git@h:x.git", "version": "--orphan"})],
                                     ["app web: source.version starts with '-'"]),
    "submodules not a bool": ([app(source={"repo": "git@h:x.git", "submodules": "maybe"})],
                              ["apps_definitions", "submodules"]),
    "absolute build context": ([app(build={"context": "/etc"})],
                               ["app web: build.context must be a path relative to the checkout"]),
    "build context with ..": ([app(build={"context": "web/../../api"})], ["app web: build.context must be"]),
    "build context with a newline": ([app(build={"context": "web\n"})], ["app web: build.context must be"]),
    "absolute dockerfile": ([app(build={"dockerfile": "/etc/shadow"})], ["app web: build.dockerfile must be"]),
    "dockerfile with ..": ([app(build={"context": "web", "dockerfile": "../Dockerfile"})],
                           ["app web: build.dockerfile must be"]),
}


@pytest.mark.parametrize("case", sorted(APPS_CASES))
def test_apps_refuses_bad_input(case):
    apps, needles = APPS_CASES[case]
    assert_refused(*run_role("apps", {"appfleet_apps": apps}), *needles)


PROXY_CASES = {
    "server name with metacharacters": ({"server_name": "web.example.com;"}, ["app web is invalid"]),
    "listen port out of range": ({"listen": 70000}, ["app web is invalid"]),
    "listen not a number": ({"listen": "80; include /etc/passwd"}, ["app web is invalid"]),
    "tls without key": ({"tls": {"certificate": "web.crt"}}, ["proxy.tls needs both certificate and key"]),
}


@pytest.mark.parametrize("case", sorted(PROXY_CASES))
def test_proxy_refuses_bad_input(case):
    proxy, needles = PROXY_CASES[case]
    apps = [app(proxy=dict(GOOD_APP["proxy"], **proxy))]
    assert_refused(*run_role("proxy", {"appfleet_apps": apps}), *needles)
