# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker's .dockerignore rules: which paths of a build context the builder gets.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import re

from ansible_collections.appfleet.docker.plugins.module_utils._repo_files import clean_path, read_repo_file

# A repository's .dockerignore is read as data, at most this long (see _repo_files.py).
DOCKERIGNORE_MAX_BYTES = 1024 * 1024


def read_dockerignore(context):
    """The context's .dockerignore bytes (b"" when it has none), read as data."""
    return read_repo_file(context, ".dockerignore", ".dockerignore", DOCKERIGNORE_MAX_BYTES,
                          missing_ok=True) or b""


class IgnorePattern(object):
    """One line of a .dockerignore file, compiled."""

    def __init__(self, text, exclusion):
        self.text = text
        self.exclusion = exclusion
        self.regex = re.compile(_pattern_to_regex(text), re.DOTALL)
        self.parts = text.split("/")

    def match(self, path):
        return self.regex.match(path) is not None

    def could_match_below(self, dir_parts):
        """True when this pattern could match the directory or something inside it."""
        for i, part in enumerate(self.parts):
            if "**" in part:
                return True
            if i >= len(dir_parts):
                return True
            if re.match(_pattern_to_regex(part), dir_parts[i]) is None:
                return False
        # The pattern names the directory itself or one of its parents.
        return True


def _pattern_to_regex(pattern):
    """Translate a Docker ignore pattern into a Python regex string.

    Go ``filepath.Match`` semantics (``*`` and ``?`` never match ``/``, ``[...]`` classes
    with ``^`` negation, ``\\`` escapes) plus ``**``, which matches any number of
    directories, zero included.
    """
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end <= i + 1:
                # An unterminated class is a literal bracket (Go reports ErrBadPattern
                # and Docker then matches nothing; a literal is the safer reading).
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                negate = body.startswith("^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("[", "\\[")
                out.append("[" + ("^/" if negate else "") + body + "]")
                i = end + 1
                continue
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


def parse_dockerignore(text):
    """Parse .dockerignore text into a list of IgnorePattern, in file order."""
    patterns = []
    for raw in text.splitlines():
        if raw.startswith("\ufeff"):
            raw = raw[1:]
        if raw.startswith("#"):
            continue
        line = raw.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if not line:
            continue
        line = clean_path(line)
        if len(line) > 1 and line.startswith("/"):
            line = line.lstrip("/") or "."
        patterns.append(IgnorePattern(line, exclusion))
    return patterns


class DockerIgnore(object):
    """The rules of one .dockerignore: ``ignored(relpath)`` like Docker decides it."""

    def __init__(self, text=""):
        self.patterns = parse_dockerignore(text)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_context(cls, context):
        return cls(read_dockerignore(context).decode("utf-8", "replace"))

    def ignored(self, relpath):
        """True when ``relpath`` (slash separated, relative to the context) is excluded.

        A pattern matches a path or any of its parent directories; the last
        matching pattern wins, ``!`` patterns re-include.
        """
        relpath = clean_path(relpath)
        parents = relpath.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            # An exclusion only matters once matched, an inclusion only before.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(relpath)
            if not hit:
                for i in range(len(parents)):
                    if pattern.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def skip_dir(self, relpath):
        """True when a walk can skip directory ``relpath`` and everything below it."""
        if not self.ignored(relpath):
            return False
        if not self.has_exclusions:
            return True
        parts = clean_path(relpath).split("/")
        return not any(p.exclusion and p.could_match_below(parts) for p in self.patterns)


class IgnoreFilter(object):
    """``DockerIgnore.ignored`` for many paths: a directory the rules skip whole is
    decided once for everything below it."""

    def __init__(self, ignore):
        self.ignore = ignore
        self.skipped = {}

    def ignored(self, path):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            skip = self.skipped.get(parent)
            if skip is None:
                skip = self.skipped[parent] = self.ignore.skip_dir(parent)
            if skip:
                return True
        return self.ignore.ignored(path)
