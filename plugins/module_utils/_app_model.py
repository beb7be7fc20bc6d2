# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app model: the inventory's ``appfleet_apps`` checked once, and each app's effective facts.

Private to this collection (leading underscore): not a public API.

Pure Python (no Ansible import), so that modules and controller plugins read the same
facts. :func:`app_model` returns every problem found, one line each, naming what the user
wrote (``appfleet_apps[1] (shop): health.path needs port: ...``) and the fix; a problem
never quotes a secret (``secret_env`` values, registry passwords).
"""

from __future__ import annotations

import difflib
import json
import os
import re

from ansible_collections.appfleet.docker.plugins.module_utils._image_ref import parse_image_ref
from ansible_collections.appfleet.docker.plugins.module_utils._resources import cpu_shares_problem, memory_problem

# The collection's app-name rule (app_container applies it too).
APP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
APP_NAME_RULE = "lowercase letters, digits, _ and -, starting with a letter or digit, at most 63 characters"
REPO_RE = re.compile(r"^[A-Za-z0-9@:/._~+-]+\Z")
VERSION_RE = re.compile(r"^[A-Za-z0-9._/+-]+\Z")
# Relative (no leading /), no '..' component, a plain character set.
RELATIVE_PATH_RE = re.compile(r"^(?!/)(?!(?:.*/)?\.\.(?:/|\Z))[A-Za-z0-9._+@/-]+\Z")
DIR_RE = re.compile(r"^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+\Z")
REGISTRY_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?\Z")
BUILD_REGISTRY_RE = re.compile(
    r"^(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z0-9.-]+:[0-9]+|localhost:[0-9]+)"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+/?\Z")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
STRATEGIES = ("start-first", "stop-first")
README = "roles/apps/README.md#the-app-definition"

_BOOLS = {"yes": True, "on": True, "true": True, "1": True, "no": False, "off": False, "false": False, "0": False}


class Opt(object):
    """One option: its type (str, path, int, float, bool, list, dict, raw), whether required, its choices."""

    def __init__(self, kind, required=False, choices=None, options=None, secret=False):
        self.kind, self.required, self.choices, self.options, self.secret = kind, required, choices, options, secret


APP_OPTIONS = {
    "name": Opt("str", required=True),
    "state": Opt("str", choices=("present", "absent")),
    "source": Opt("dict", options={
        "repo": Opt("str", required=True), "version": Opt("str"), "key_file": Opt("path"),
        "known_hosts": Opt("lines"), "depth": Opt("int"), "submodules": Opt("bool")}),
    "build": Opt("dict", options={
        "context": Opt("str"), "dockerfile": Opt("str"), "args": Opt("dict"), "target": Opt("str"),
        "base_refresh": Opt("bool")}),
    "image": Opt("str"),
    "command": Opt("list"),
    "env": Opt("dict"),
    "secret_env": Opt("dict", secret=True),
    "secret_delivery": Opt("str", choices=("file", "env")),
    "secret_uid": Opt("int"),
    "user": Opt("str"),
    "read_only": Opt("bool"),
    "tmpfs": Opt("list"),
    "cap_drop": Opt("list"),
    "cap_add": Opt("list"),
    "pids_limit": Opt("int"),
    "security_opts": Opt("list"),
    "port": Opt("int"),
    "published_ports": Opt("list"),
    "proxy": Opt("dict", options={
        "server_name": Opt("raw"), "listen": Opt("int"),
        "tls": Opt("dict", options={"certificate": Opt("path", required=True), "key": Opt("path", required=True)}),
        "redirect_http": Opt("bool"), "hsts": Opt("bool"), "hsts_max_age": Opt("int"),
        "connect_timeout": Opt("str"), "read_timeout": Opt("str"), "send_timeout": Opt("str"),
        "client_max_body_size": Opt("str")}),
    "health": Opt("dict", options={"path": Opt("str"), "timeout": Opt("int")}),
    "volumes": Opt("list"),
    "networks": Opt("list"),
    "labels": Opt("dict"),
    "restart_policy": Opt("str"),
    "memory": Opt("str"),
    "cpu_shares": Opt("int"),
    "cpus": Opt("float"),
    "strategy": Opt("str", choices=STRATEGIES),
    "drain_seconds": Opt("int"),
    "keep_images": Opt("int"),
}

# Effective values an app takes from the role's apps_default_* settings when it sets none.
DEFAULTED = ("strategy", "keep_images", "drain_seconds", "restart_policy", "secret_delivery", "read_only",
             "tmpfs", "cap_drop", "pids_limit", "security_opts", "memory", "cpu_shares")
# Limits an app turns off by writing null (``memory: null``) instead of taking the default.
NULL_OPTS_OUT = ("memory", "cpu_shares")
# The role variable each resource default comes from, and its kind.
RESOURCE_DEFAULTS = (("memory", "apps_default_memory", "str"), ("cpu_shares", "apps_default_cpu_shares", "int"))
# What a missing required option should be.
_REQUIRED_HINTS = {
    "name": "give the app a name (%s)" % APP_NAME_RULE,
    "source.repo": "give the repository URL, for example git@git.example.com:team/web.git",
    "proxy.tls.certificate": "give the certificate file on the controller beside proxy.tls.key",
    "proxy.tls.key": "give the private key file on the controller beside proxy.tls.certificate",
}


def _shown(value):
    text = json.dumps(value, default=str, ensure_ascii=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _what(value):
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _convert(kind, value, secret=False):
    """(converted value, None) or (None, problem text) for one value of ``kind``."""
    shown = "" if secret else " %s" % _shown(value)
    if kind in ("str", "path"):
        if isinstance(value, str):
            return value, None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value), None
        return None, "must be a string, not %s%s" % (_what(value), shown)
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str) and re.match(r"^-?[0-9]+\Z", value.strip()):
            return int(value.strip()), None
        return None, "must be a whole number, not %s%s" % (_what(value), shown)
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        if isinstance(value, str):
            try:
                return float(value), None
            except ValueError:
                pass
        return None, "must be a number, not %s%s" % (_what(value), shown)
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, (str, int)) and str(value).strip().lower() in _BOOLS:
            return _BOOLS[str(value).strip().lower()], None
        return None, "must be true or false, not%s" % shown
    if kind == "list":
        if isinstance(value, str):
            return None, "must be a list, not a string: write it as [%s]" % _shown(value)
        if not isinstance(value, (list, tuple)):
            return None, "must be a list of strings, not %s%s" % (_what(value), shown)
        bad = [i for i, v in enumerate(value) if isinstance(v, (dict, list, tuple, bool)) or v is None]
        if bad:
            return None, "must be a list of strings; item %d is %s" % (bad[0], _what(value[bad[0]]))
        return [str(v) for v in value], None
    if kind == "lines":
        if isinstance(value, str):
            return value, None
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value), None
        return None, "must be a string or a list of strings (known_hosts lines), not %s" % _what(value)
    if kind == "dict":
        if isinstance(value, dict):
            return value, None
        return None, "must be a mapping of settings, not %s%s" % (_what(value), shown)
    return value, None


def _source_files(facts):
    """The files the role installs before a checkout (appfleet.docker.host_files): the deploy key
    (0600, a controller file, ``src``: never shown) and the git server's host keys (0644), those the
    app gives."""
    source, files = facts["source"], []
    if "key_file" in source:
        files.append({"dest": facts["key"], "src": source["key_file"], "mode": "0600"})
    if "known_hosts" in source:
        lines = [source["known_hosts"]] if isinstance(source["known_hosts"], str) else source["known_hosts"]
        files.append({"dest": facts["known_hosts"], "content": "\n".join(line.strip() for line in lines) + "\n",
                      "mode": "0644"})
    return files


def _check_options(value, options, prefix, problems):
    """``value`` (a dict) checked against ``options``: {name: converted value} of the good ones."""
    result = {}
    for key in value:
        if key in options:
            continue
        close = difflib.get_close_matches(str(key), list(options), n=1, cutoff=0.6) or sorted(
            o for o in options if str(key).startswith(o) or o.startswith(str(key)))
        fix = "did you mean %s?" % close[0] if close else "the options are %s" % ", ".join(sorted(options))
        problems.append("%s%s: unknown option; %s" % (prefix, key, fix))
    for key, opt in options.items():
        path = prefix + key
        if key not in value or value[key] is None:
            if opt.required:
                problems.append("%s: required: %s" % (path, _REQUIRED_HINTS.get(path, "set it")))
            continue
        converted, error = _convert(opt.kind, value[key], opt.secret)
        if error:
            problems.append("%s: %s" % (path, error))
            continue
        if opt.choices and converted not in opt.choices:
            problems.append("%s: %s is not one of %s" % (path, _shown(converted), ", ".join(opt.choices)))
            continue
        if opt.options:
            converted = _check_options(converted, opt.options, path + ".", problems)
        result[key] = converted
    return result


def controller_path(path, base_dir):
    """(absolute path, relative as written?) of a controller path; ``~`` is the controller user's home."""
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded) or not base_dir:
        return expanded, False
    return os.path.normpath(os.path.join(base_dir, expanded)), True


def _image_facts(image, problems, logins):
    """registry, login index and digest-pinned flag of ``image``; a problem when it is not one image_pull takes."""
    try:
        ref = parse_image_ref(image)
    except ValueError as exc:
        problems.append("image: %s" % str(exc).rstrip("."))
        return None
    if ref.tag and ref.digest:
        problems.append("image: %s names both a tag and a digest, which image_pull refuses: write %s@%s"
                        % (_shown(image), image.split("@")[0].rsplit(":", 1)[0], ref.digest))
        return None
    if not ref.tag and not ref.digest:
        problems.append("image: %s names no tag or digest: write the version you mean, for example %s:1.4 or "
                        "%s@sha256:<digest> (a bare name would run whatever latest is that day)"
                        % (_shown(image), image, image))
        return None
    registry = ref.registry or "docker.io"
    login = next((i for i, entry in enumerate(logins) if isinstance(entry, dict)
                  and entry.get("registry") == registry), None)
    return {"registry": registry, "login": login, "pinned": bool(ref.digest)}


def _app_facts(app, settings, problems, given):
    """The effective facts of one app (``app``: its options that passed their own checks; ``given``: the
    options written); adds its cross-field problems."""
    defaults = settings.get("defaults") or {}
    dirs = settings.get("directories") or {}
    name = app["name"]
    state = app.get("state", "present")
    facts = dict(app)
    facts["state"] = state
    for key in DEFAULTED:
        facts.setdefault(key, defaults.get(key))
    facts["cap_add"] = app.get("cap_add", [])
    facts["env"] = app.get("env", {})
    facts["secret_env"] = app.get("secret_env", {})
    health = dict(app.get("health") or {})
    health.setdefault("timeout", defaults.get("health_timeout"))
    facts["health"] = health
    facts["controller_files"] = []
    facts["source_files"] = []
    # Where the role puts the app on the host (also for an absent app: what to remove).
    facts["src"] = "%s/%s" % (dirs.get("src", ""), name)
    facts["key"] = "%s/%s" % (dirs.get("key", ""), name)
    facts["known_hosts"] = "%s/%s.known_hosts" % (dirs.get("key", ""), name)
    source, image = app.get("source"), app.get("image")
    facts["kind"] = "source" if source is not None else "image" if image is not None else None
    if state != "absent":
        if "source" not in given and "image" not in given:
            problems.append("needs source or image: give source.repo (a git repository to build) or image (a "
                            "registry image to run, with a tag or digest)")
        elif "source" in given and "image" in given:
            problems.append("source and image: give one of them, not both")
    if source is not None:
        repo = source.get("repo")
        if repo is not None:
            if repo.startswith("-"):
                problems.append("source.repo: %s starts with '-', which git would read as an option: give a "
                                "repository URL" % _shown(repo))
            elif not REPO_RE.match(repo):
                problems.append("source.repo: %s holds characters a repository URL does not (spaces, quotes, ; $ "
                                "and the like): give the URL, for example git@git.example.com:team/web.git"
                                % _shown(repo))
        written = source.get("version", "main")
        pins = settings.get("versions") if isinstance(settings.get("versions"), dict) else {}
        version = str(pins.get(name, written))
        if written.startswith("-"):
            problems.append("source.version: %s starts with '-', which git would read as an option: give a "
                            "branch, tag or commit" % _shown(written))
        elif not VERSION_RE.match(written):
            problems.append("source.version: %s must be a branch, tag or commit (letters, digits, . _ / + -)"
                            % _shown(written))
        facts["version"] = version
        facts["source"] = dict(source, submodules=source.get("submodules", False))
        if "key_file" in source:
            path, relative = controller_path(source["key_file"], settings.get("base_dir"))
            facts["source"]["key_file"] = path
            facts["controller_files"].append({"option": "source.key_file", "path": path, "relative": relative})
        facts["source_files"] = _source_files(facts)
        build = dict(app.get("build") or {})
        build.setdefault("context", ".")
        build.setdefault("dockerfile", "Dockerfile")
        build.setdefault("args", {})
        build.setdefault("base_refresh", _convert("bool", defaults.get("base_refresh", False))[0] is True)
        for key in ("context", "dockerfile"):
            if not RELATIVE_PATH_RE.match(build[key]):
                problems.append("build.%s: %s must be a path relative to the %s, without '..' and made of letters, "
                                "digits and . _ - + @ /: for example %s"
                                % (key, _shown(build[key]), "checkout" if key == "context" else "build.context",
                                   "services/web" if key == "context" else "docker/Dockerfile"))
        facts["build"] = build
        facts["image_name"] = "%s%s" % (settings.get("image_prefix", ""), name)
    if image is not None and state != "absent":
        if not re.match(r"^[a-z0-9][a-z0-9._/:@-]*\Z", image):
            problems.append("image: %s must be an image reference in lowercase, for example "
                            "registry.example.com/team/web:1.4" % _shown(image))
        else:
            found = _image_facts(image, problems, settings.get("registry_logins") or [])
            if found:
                facts.update(found)
    port = app.get("port")
    if port is not None and not 1 <= port <= 65535:
        problems.append("port: %d is not a port: give the port 1-65535 the app listens on inside its container"
                        % port)
    if health.get("path") is not None and port is None:
        problems.append("health.path needs port: set port to the port the app listens on inside its container")
    for key, problem in (("memory", memory_problem), ("cpu_shares", cpu_shares_problem)):
        if app.get(key) is not None and problem(app[key]):
            problems.append("%s: %s %s" % (key, _shown(app[key]), problem(app[key])))
    if facts["keep_images"] is not None and facts["keep_images"] < 1:
        problems.append("keep_images: %d keeps no image to roll back to: give 1 or more" % facts["keep_images"])
    if facts["strategy"] not in STRATEGIES:
        problems.append("strategy: %s is not one of %s" % (_shown(facts["strategy"]), ", ".join(STRATEGIES)))
    if isinstance(app.get("secret_env"), dict):
        bad = [k for k in app["secret_env"] if not isinstance(k, str) or not ENV_KEY_RE.match(k)]
        if bad:
            problems.append("secret_env: key %s is not a variable name: use letters, digits and _" % _shown(bad[0]))
    tls = (app.get("proxy") or {}).get("tls")
    if isinstance(tls, dict):
        tls = dict(tls)
        for key in ("certificate", "key"):
            if key in tls:
                tls[key], relative = controller_path(tls[key], settings.get("base_dir"))
                facts["controller_files"].append({"option": "proxy.tls." + key, "path": tls[key],
                                                  "relative": relative})
        facts["proxy"] = dict(app["proxy"], tls=tls)
    return facts


def _label(index, app):
    name = app.get("name") if isinstance(app, dict) else None
    if isinstance(name, str) and APP_NAME_RE.match(name):
        return "appfleet_apps[%d] (%s)" % (index, name)
    if name is not None:
        return "appfleet_apps[%d] (%s)" % (index, _shown(name))
    return "appfleet_apps[%d]" % index


def _resource_defaults(settings, problems):
    """The defaults of memory and cpu_shares converted (None: no default), a problem per bad one."""
    defaults = settings.get("defaults") or {}
    found = {}
    for key, option, kind in RESOURCE_DEFAULTS:
        value = defaults.get(key)
        if value is None:
            continue
        converted, error = _convert(kind, value)
        error = error or (memory_problem if key == "memory" else cpu_shares_problem)(converted)
        if error:
            problems.append("%s: %s %s" % (option, _shown(value), error))
            continue
        found[key] = converted
    return found


def _check_settings(settings, problems):
    for key, option in (("upstream", "apps_upstream_dir"), ("src", "apps_src_dir"), ("key", "apps_key_dir"),
                        ("secret", "apps_secret_dir")):
        value = (settings.get("directories") or {}).get(key)
        if value is not None and not DIR_RE.match(str(value)):
            problems.append("%s: %s must be an absolute path whose components are letters, digits, _ . - (none "
                            "starting with '.', so no '..'): for example /srv/appfleet/src" % (option, _shown(value)))
    build_registry = settings.get("build_registry") or ""
    if not isinstance(build_registry, str) or (build_registry and not BUILD_REGISTRY_RE.match(build_registry)):
        problems.append("apps_build_registry: %s must be a registry host (with a dot or a port, or localhost) and a "
                        "repository path, without scheme, tag or digest: for example registry.example.com:5000/team"
                        % _shown(build_registry))
    logins = settings.get("registry_logins") or []
    if not isinstance(logins, list):
        problems.append("apps_registry_logins: must be a list of {registry, username, password, persistent}, not %s"
                        % _what(logins))
        return
    for index, login in enumerate(logins):
        where = "apps_registry_logins[%d]" % index
        if not isinstance(login, dict):
            problems.append("%s: must be a mapping {registry, username, password, persistent}, not %s"
                            % (where, _what(login)))
            continue
        registry = login.get("registry")
        for key in sorted(set(login) - {"registry", "username", "password", "persistent"}):
            close = difflib.get_close_matches(str(key), ["registry", "username", "password", "persistent"], n=1)
            fix = "did you mean %s?" % close[0] if close else "the options are registry, username, password, persistent"
            problems.append("%s: %s: unknown option; %s" % (where, key, fix))
        if not isinstance(registry, str) or not REGISTRY_RE.match(registry):
            problems.append("%s: registry: %s must be the host or host:port as image references name it, without "
                            "scheme or path: for example registry.example.com:5000, or docker.io"
                            % (where, _shown(registry)))
        for key in ("username", "password"):
            if not isinstance(login.get(key), str) or not login.get(key):
                problems.append("%s (%s): %s: required, a non-empty string%s"
                                % (where, registry, key, " (keep it in a vault)" if key == "password" else ""))
        if not isinstance(login.get("persistent", False), bool):
            problems.append("%s (%s): persistent: must be true or false" % (where, registry))


def _names(value, option, problems):
    """The app names of a list or a comma-separated string (empty ones dropped)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        problems.append("%s: must be a list of app names or a comma-separated string, not %s"
                        % (option, _what(value)))
        return []
    return [str(v).strip() for v in value if str(v).strip()]


def _check_selection(settings, apps, problems):
    """The selected app names (apps_only; [] selects every app); problems for unknown names and pins.

    ``apps``: {"name", "kind"} of every app with a good name, valid or not otherwise.
    """
    known = [a["name"] for a in apps]
    shown_known = ", ".join(known) if known else "(none: appfleet_apps is empty)"
    named = _names(settings.get("only"), "apps_only", problems)
    for name in named:
        if name not in known:
            problems.append("apps_only: unknown app %s (from -e apps= or apps_only): name one of %s"
                            % (_shown(name), shown_known))
    versions = settings.get("versions") or {}
    if not isinstance(versions, dict):
        problems.append("appfleet_versions: must be a mapping {app name: branch, tag or commit}, not %s"
                        % _what(versions))
        versions = {}
    kinds = dict((a["name"], a["kind"]) for a in apps)
    for name, pin in versions.items():
        if name not in kinds:
            problems.append("appfleet_versions: unknown app %s: pin one of %s" % (_shown(name), shown_known))
        elif kinds[name] != "source":
            problems.append("appfleet_versions: %s runs an image, not a git source: change its image instead of "
                            "pinning it" % name)
        elif not isinstance(pin, (str, int)) or isinstance(pin, bool) or str(pin).startswith("-") \
                or not VERSION_RE.match(str(pin)):
            problems.append("appfleet_versions: the pin of %s, %s, must be a branch, tag or commit (letters, digits, "
                            ". _ / + -, not starting with '-')" % (name, _shown(pin)))
    return [n for n in known if not named or n in named]


def app_model(apps, settings):
    """``{"apps", "problems", "selected", "absent", "build_registry"}`` of the app definitions ``apps``.

    ``settings``: ``only`` (apps_only), ``versions`` (pins), ``base_dir`` (of relative controller
    paths), ``directories`` ({src, key, upstream, secret}), ``defaults`` ({strategy, keep_images,
    health_timeout, drain_seconds, restart_policy, secret_delivery, read_only, tmpfs, cap_drop,
    pids_limit, security_opts, memory, cpu_shares, base_refresh}), ``image_prefix``, ``registry_logins``,
    ``build_registry``. ``apps`` holds the effective facts of each
    app whose own definition is valid, even when others are not.
    """
    problems = []
    settings = settings or {}
    _check_settings(settings, problems)
    defaults = dict(settings.get("defaults") or {})
    for key, dummy, dummy2 in RESOURCE_DEFAULTS:
        defaults.pop(key, None)
    defaults.update(_resource_defaults(settings, problems))
    settings = dict(settings, defaults=defaults)
    if apps is None:
        apps = []
    if not isinstance(apps, (list, tuple)):
        problems.append("appfleet_apps: must be a list of apps (each a mapping with name and source or image), "
                        "not %s: see %s" % (_what(apps), README))
        return {"apps": [], "problems": problems, "selected": [], "absent": [],
                "build_registry": {"repository": "", "login": None}}
    effective = []
    named = []
    first = {}
    for index, app in enumerate(apps):
        label = _label(index, app)
        if not isinstance(app, dict):
            problems.append("%s: must be a mapping with name and source or image, not %s%s"
                            % (label, _what(app), "" if app is None else " " + _shown(app)))
            continue
        own = []
        checked = _check_options(app, APP_OPTIONS, "", own)
        # An explicit null turns the limit off instead of taking the default.
        checked.update((key, None) for key in NULL_OPTS_OUT if key in app and app[key] is None)
        name = checked.get("name")
        if name is not None:
            kind = "source" if "source" in checked else "image" if "image" in checked else None
            if not APP_NAME_RE.match(name):
                own.append("name: %s is not an app name: use %s" % (_shown(name), APP_NAME_RULE))
            elif name in first:
                own.append("name: %s is also the name of appfleet_apps[%d]: give each app its own name"
                           % (name, first[name]))
            else:
                first[name] = index
                named.append({"name": name, "kind": kind})
        # The cross-field rules read the options that passed their own checks.
        facts = _app_facts(dict(checked, name=name or ""), settings, own, set(k for k in app if app[k] is not None))
        facts["index"] = index
        if not own:
            effective.append(facts)
        problems.extend("%s: %s" % (label, line) for line in own)
    selected = _check_selection(settings, named, problems)
    # Build once through a registry: the repository prefix and its entry of apps_registry_logins.
    share = (settings.get("build_registry") or "").strip().rstrip("/") if isinstance(
        settings.get("build_registry"), str) else ""
    logins = settings.get("registry_logins") if isinstance(settings.get("registry_logins"), list) else []
    share_login = next((i for i, entry in enumerate(logins) if isinstance(entry, dict)
                        and entry.get("registry") == share.split("/")[0]), None) if share else None
    absent = [a["name"] for a in effective if a["state"] == "absent"]
    return {"apps": effective, "problems": problems, "selected": selected, "absent": absent,
            "build_registry": {"repository": share, "login": share_login}}
