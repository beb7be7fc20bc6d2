"""_input_types: a wrongly-typed variable named once, in one line."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._input_types import (
    choice_problem, is_kind, shown, type_problem, type_problems)


@pytest.mark.parametrize("kind, good, bad", [
    ("str", "x", 1),
    ("bool", False, "false"),
    ("int", 3, True),
    ("list", [1, "a"], "a"),
    ("strlist", ["a"], ["a", 1]),
    ("dict", {}, []),
    ("strmap", {"a": "1"}, {"a": 1}),
])
def test_is_kind(kind, good, bad):
    assert is_kind(kind, good)
    assert not is_kind(kind, bad)


def test_unknown_kind_is_a_bug():
    with pytest.raises(ValueError):
        is_kind("float", 1.0)


@pytest.mark.parametrize("kind, value, expected", [
    ("strlist", "acmeops", 'v: give a list of strings; got the string "acmeops"'),
    ("strlist", 12, "v: give a list of strings; got the number 12"),
    ("strlist", True, "v: give a list of strings; got the boolean true"),
    ("strlist", ["a", 12], "v: give a list of strings; got a list with entries that are not strings: [12]"),
    ("strlist", {"a": 1}, "v: give a list of strings; got a mapping"),
    ("dict", ["a"], "v: give a mapping; got a list"),
    ("strmap", {"a": 1, "b": "2"}, 'v: give a mapping whose values are strings (quote numbers, e.g. "3"); '
                                   'got a mapping with values that are not strings: {"a": 1}'),
    ("str", None, "v: give a string; got null (an empty value)"),
    ("bool", "yes", "v: give true or false; got the string \"yes\" (with -e, pass JSON: -e '{\"v\": true}')"),
    ("int", 1.5, "v: give an integer; got the number 1.5"),
])
def test_type_problem_is_one_line(kind, value, expected):
    assert type_problem("v", value, kind) == expected


def test_type_problem_with_words_and_example():
    assert type_problem("users", 12, "strlist", "a list of user names", "[deploy]") == \
        "users: give a list of user names, for example [deploy]; got the number 12"


def test_a_long_string_is_cut():
    assert shown("x" * 200).endswith('xxx...') and len(shown("x" * 200)) == 80


def test_type_problems_names_the_wrong_ones():
    problems, wrong = type_problems({"a": "x", "b": 1}, {"a": "str", "b": ("str", "a name", "web")})
    assert problems == ["b: give a name, for example web; got the number 1"]
    assert wrong == {"b"}


@pytest.mark.parametrize("value, expected", [
    ("on", None),
    ("", None),
    ("yes", 'state: give one of "", "on", "off"; got the string "yes"'),
    (True, 'state: give one of "", "on", "off"; got the boolean true'),
])
def test_choices(value, expected):
    problems, wrong = type_problems({"state": value}, {"state": {"choices": ["", "on", "off"]}})
    assert problems == ([expected] if expected else [])
    assert wrong == ({"state"} if expected else set())


def test_a_choice_matches_a_subclass_of_its_type_but_not_another_type():
    """Ansible gives templated strings as a subclass of str: still the string choice."""
    class Tagged(str):
        pass
    assert choice_problem("x", Tagged("on"), ["", "on"]) is None
    assert choice_problem("x", 1, [True]) is not None
    assert choice_problem("x", True, [1]) is not None
