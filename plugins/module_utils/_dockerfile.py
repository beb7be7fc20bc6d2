# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockerfiles: read one as data, and what it builds from (bases, BuildKit-only syntax).

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import os
import re

from ansible_collections.appfleet.docker.plugins.module_utils._repo_files import clean_path, read_repo_file

# A repository's Dockerfile is read as data, at most this long (see _repo_files.py).
DOCKERFILE_MAX_BYTES = 1024 * 1024

_ARG_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _logical_lines(text):
    """Dockerfile instructions: comments dropped, continuation lines joined."""
    escape = "\\"
    lines = text.splitlines()
    # Parser directives sit at the very top: '# escape=`' changes the escape char.
    for line in lines:
        m = re.match(r"^\s*#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("`", "\\"):
            escape = m.group(2)
    current = ""
    for line in lines:
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith(escape):
            current += stripped[:-1] + " "
            continue
        current += stripped
        yield current
        current = ""
    if current.strip():
        yield current


def _substitute(value, args):
    def repl(m):
        name = m.group(1) or m.group(2)
        return args.get(name, "")
    return _ARG_REF.sub(repl, value)


def base_images(dockerfile_text, build_args=None):
    """External images a Dockerfile builds from, in order of first use.

    FROM and COPY/ADD --from references; ``scratch``, earlier stage names and
    stage indexes are left out. ARGs declared before the first FROM are
    substituted (their defaults, overridden by ``build_args``).
    """
    build_args = dict(build_args or {})
    args = {}
    stages = set()
    refs = []
    seen_from = False
    for line in _logical_lines(dockerfile_text):
        parts = line.split()
        if not parts:
            continue
        instr = parts[0].upper()
        rest = parts[1:]
        if instr == "ARG" and not seen_from:
            for decl in rest:
                name, sep, default = decl.partition("=")
                if name in build_args:
                    args[name] = build_args[name]
                else:
                    args[name] = default.strip("\"'") if sep else ""
        elif instr == "FROM":
            seen_from = True
            words = [w for w in rest if not w.startswith("--")]
            if not words:
                continue
            ref = _substitute(words[0], args)
            known = ref.lower() == "scratch" or ref.lower() in stages
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2].lower())
            if not known and ref not in refs:
                refs.append(ref)
        elif instr in ("COPY", "ADD"):
            for w in rest:
                if w.startswith("--from="):
                    ref = _substitute(w[len("--from="):], args)
                    if ref.isdigit() or ref.lower() in stages or ref.lower() == "scratch":
                        continue
                    if ref not in refs:
                        refs.append(ref)
    return refs


def uses_buildkit_syntax(dockerfile_text):
    """True when the Dockerfile needs BuildKit (RUN --mount, --network, --security, heredocs)."""
    for line in _logical_lines(dockerfile_text):
        parts = line.split()
        if not parts:
            continue
        instr = parts[0].upper()
        flags = []
        for word in parts[1:]:
            if not word.startswith("--"):
                break
            flags.append(word)
        if instr == "RUN" and any(w.startswith(("--mount", "--network", "--security")) for w in flags):
            return True
        if instr in ("RUN", "COPY") and re.search(r"<<-?[\"']?[A-Za-z_]", line):
            return True
        if instr in ("COPY", "ADD") and any(w.startswith(("--link", "--chmod", "--parents", "--exclude")) for w in flags):
            return True
    return False


def read_dockerfile(context, dockerfile):
    """The Dockerfile's bytes, read as data (see read_repo_file)."""
    context = os.path.abspath(context)
    rel = os.path.relpath(dockerfile, context) if os.path.isabs(dockerfile) else dockerfile
    return read_repo_file(context, rel, "Dockerfile", DOCKERFILE_MAX_BYTES)


def normal_dockerfile_path(context, dockerfile):
    """The Dockerfile's path as the id sees it: relative to the context, cleaned
    (``./Dockerfile`` and ``a/../Dockerfile`` are ``Dockerfile``)."""
    path = dockerfile.replace(os.sep, "/")
    if os.path.isabs(dockerfile):
        path = os.path.relpath(dockerfile, context).replace(os.sep, "/")
    return clean_path(path)
