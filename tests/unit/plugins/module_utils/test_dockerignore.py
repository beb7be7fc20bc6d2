"""The .dockerignore matcher follows Docker's documented rules."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._dockerignore import DockerIgnore, parse_dockerignore


@pytest.mark.parametrize("rules, path, ignored", [
    # plain names match the path or any parent directory
    ("node_modules", "node_modules", True),
    ("node_modules", "node_modules/a/b.js", True),
    ("node_modules", "src/node_modules", False),
    # leading slash and ./ are relative to the context root
    ("/build", "build/out.o", True),
    ("./build", "build", True),
    # * and ? never cross a slash
    ("*.log", "app.log", True),
    ("*.log", "logs/app.log", False),
    ("*/*.log", "logs/app.log", True),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("a?b", "a/b", False),
    # ** matches any number of directories, zero included
    ("**/*.go", "main.go", True),
    ("**/*.go", "pkg/deep/x.go", True),
    ("docs/**", "docs/a/b.md", True),
    ("docs/**", "docsx/a", False),
    ("a/**/z", "a/z", True),
    ("a/**/z", "a/b/c/z", True),
    # character classes, with ^ negation
    ("[abc].txt", "b.txt", True),
    ("[abc].txt", "d.txt", False),
    ("[^abc].txt", "d.txt", True),
    ("[^abc].txt", "a.txt", False),
    ("[a-c]x", "bx", True),
    # escapes make wildcards literal
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    # regex metacharacters in names are literal
    ("a+b(c).txt", "a+b(c).txt", True),
    ("a.txt", "abtxt", False),
    # ! re-includes; the last matching rule wins
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "CHANGES.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-a.md", False),
    # an exception on a directory re-includes what is inside it
    ("*\n!src", "src/main.c", False),
    ("*\n!src", "lib/x.c", True),
    # comments and blank lines are skipped; whitespace around a rule is trimmed
    ("# *.txt\n\n  secret.txt  ", "a.txt", False),
    ("# *.txt\n\n  secret.txt  ", "secret.txt", True),
    # paths are cleaned
    ("a/../b", "b/c", True),
    ("", "anything", False),
])
def test_ignored(rules, path, ignored):
    assert DockerIgnore(rules).ignored(path) is ignored


@pytest.mark.parametrize("rules, directory, skip", [
    ("node_modules", "node_modules", True),
    ("node_modules", "src", False),
    # an exception below an excluded directory forces a walk into it
    ("vendor\n!vendor/keep.txt", "vendor", False),
    ("vendor\n!other/keep.txt", "vendor", True),
    ("vendor\n!**/keep.txt", "vendor", False),
    ("*\n!src/app", "src", False),
    ("*\n!src/app", "lib", True),
])
def test_skip_dir(rules, directory, skip):
    assert DockerIgnore(rules).skip_dir(directory) is skip


def test_parse_keeps_order_and_exclusions():
    patterns = parse_dockerignore("#c\n/a/\n! b \n**/c\n")
    assert [(p.text, p.exclusion) for p in patterns] == [("a", False), ("b", True), ("**/c", False)]
