# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of a role variable (a string, true or false, a list of strings...), checked once.

Private to this collection (leading underscore): not a public API.

Pure Python. The roles' argument specs declare these variables ``type: raw``: a spec
failure prints the role's whole spec, and a spec converts a value for its own check only
(``12`` passes as ``["12"]``), while the role reads the value as given. So each role's
settings module names a wrongly-typed value here, once, in one line.
"""

from __future__ import annotations

import json

# kind -> the words a message uses for it.
KINDS = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "list": "a list",
    "strlist": "a list of strings",
    "dict": "a mapping",
    "strmap": "a mapping whose values are strings (quote numbers, e.g. \"3\")",
}


def shown(value, limit=80):
    """The value as JSON (a string quoted), cut to ``limit`` characters."""
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_kind(kind, value):
    """True when ``value`` has the shape ``kind`` (a key of KINDS)."""
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "strlist":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "strmap":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    raise ValueError("unknown kind %r" % kind)


def described(kind, value):
    """What ``value`` is, in the words of a message: 'the string "a"', 'the number 12'..."""
    if isinstance(value, str):
        return "the string " + shown(value)
    if isinstance(value, bool):
        return "the boolean " + shown(value)
    if isinstance(value, (int, float)):
        return "the number " + shown(value)
    if value is None:
        return "null (an empty value)"
    if isinstance(value, (list, tuple)):
        if kind == "strlist":
            return "a list with entries that are not strings: " + shown([v for v in value if not isinstance(v, str)])
        return "a list"
    if isinstance(value, dict):
        if kind == "strmap":
            return "a mapping with values that are not strings: " + shown(
                {k: v for k, v in value.items() if not isinstance(v, str)})
        return "a mapping"
    return shown(value)


def type_problem(name, value, kind, what=None, example=None):
    """One line when ``value`` (the variable ``name``) is not of ``kind``; None when it is."""
    if is_kind(kind, value):
        return None
    hint = ""
    if kind == "bool" and isinstance(value, str):
        hint = " (with -e, pass JSON: -e '{\"%s\": true}')" % name
    example = ", for example " + example if example else ""
    return "%s: give %s%s; got %s%s" % (name, what or KINDS[kind], example, described(kind, value), hint)


def _kind_of(value):
    """The plain type of ``value`` (a templated string is a str): False is not 0, "1" is not 1."""
    return next((kind for kind in (bool, int, float, str) if isinstance(value, kind)), type(value))


def choice_problem(name, value, choices):
    """One line when ``value`` (the variable ``name``) is not one of ``choices``; None when it is."""
    if any(_kind_of(value) is _kind_of(choice) and value == choice for choice in choices):
        return None
    return "%s: give one of %s; got %s" % (name, ", ".join(shown(c) for c in choices), described("str", value))


def type_problems(values, kinds):
    """(problems, names of the variables of the wrong shape) of ``values`` against
    ``kinds``: {name: kind, [kind, what, example] or {"choices": [...]}}."""
    problems, wrong = [], set()
    for name, spec in kinds.items():
        if isinstance(spec, dict):
            problem = choice_problem(name, values[name], spec["choices"])
        else:
            kind, what, example = (spec, None, None) if isinstance(spec, str) else spec
            problem = type_problem(name, values[name], kind, what, example)
        if problem:
            problems.append(problem)
            wrong.add(name)
    return problems, wrong


# The releases the roles are tested on (molecule, e2e), by distribution.
SUPPORTED_RELEASES = {"Debian": ("12", "13")}


def release_problem(facts, role):
    """One line when the host's facts name a release ``role`` is not tested on; None when
    it is tested, or when no facts were gathered (a check on the controller alone)."""
    if not facts:
        return None
    distribution = facts.get("distribution") or "unknown"
    if str(facts.get("distribution_major_version", "")) in SUPPORTED_RELEASES.get(distribution, ()):
        return None
    return ("appfleet.docker.%s supports the releases it is tested on: Debian 12 (bookworm) and 13 (trixie); "
            "this host is %s %s (os family %s)." % (role, distribution, facts.get("distribution_version", ""),
                                                    facts.get("os_family") or "unknown"))
