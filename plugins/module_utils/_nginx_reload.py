# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until nginx runs the configuration that a reload asked it to load.

Private to this collection (leading underscore): not a public API.

``nginx -s reload`` (and ``systemctl reload nginx``, which runs it) only sends
the master process a SIGHUP and returns. The master then reads the
configuration, starts a new generation of worker processes and, about 100 ms
later, tells the old workers to stop accepting connections and to finish the
requests they hold. Until then a new connection may reach an old worker,
which sends it to the previous upstream (on a first deploy the placeholder's
502). So after a reload ``ReloadWatch.wait`` polls the master's children
until one is new (a pid not there before the reload) and no old worker still
accepts: each has exited or its title reads ``worker process is shutting
down``, which nginx sets right before it closes its listening sockets.

The master is found by its pid file: the ``pid`` directive of the
configuration the reload command names (nginx's ``-p``, ``-c`` and ``-g``),
else Debian's compiled-in ``/run/nginx.pid``. A command that runs no nginx (a
wrapper script), a pid file naming no running nginx or a master without
worker processes leaves nothing to watch: the wait is skipped.
"""

from __future__ import annotations

import os
import re
import time

from ansible_collections.appfleet.docker.plugins.module_utils._files import read_file

# Debian's nginx: its --conf-path and --pid-path.
DEFAULT_CONF = "/etc/nginx/nginx.conf"
DEFAULT_PID_FILE = "/run/nginx.pid"
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05

# The nginx options that take a value: -c file, -e file, -g directives, -p prefix, -s signal.
_VALUE_OPTIONS = "cegps"
_PID_RE = re.compile(r"(?:^|[;{}])\s*pid\s+(\"[^\"]*\"|'[^']*'|[^\s;]+)\s*;", re.M)


def nginx_options(argv):
    """{option letter: value} of the nginx that ``argv`` runs, or None when it runs no nginx.

    nginx is the first word named ``nginx`` (or ``nginx.service``): ``sudo nginx -s reload``
    and ``systemctl reload nginx`` (no options: the defaults) run it. As nginx does, a value
    follows its letter in the same word (``-cFILE``) or is the next word, and the last one wins.
    """
    names = [os.path.basename(word) for word in argv]
    for name in ("nginx", "nginx.service"):
        if name in names:
            words = iter(argv[names.index(name) + 1:])
            break
    else:
        return None
    options = {}
    for word in words:
        if not word.startswith("-"):
            continue
        letters = word[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in _VALUE_OPTIONS:
                options[letter] = letters or next(words, "")
                break
    return options


def pid_directive(text):
    """The value of the ``pid`` directive in nginx configuration text, or None."""
    uncommented = re.sub(r"#[^\n]*", "", text or "")
    match = _PID_RE.search(uncommented)
    return match.group(1).strip("\"'") if match else None


def pid_file(argv, read=read_file):
    """The pid file of the nginx that the command ``argv`` signals, or None when it cannot be told.

    Relative paths are the prefix's (``-p``); without one they are not guessed.
    """
    options = nginx_options(argv)
    if options is None:
        return None
    prefix = options.get("p")

    def full(path):
        if os.path.isabs(path):
            return path
        return os.path.join(prefix, path) if prefix else None

    path = pid_directive(options.get("g"))
    if path is None:
        conf = full(options.get("c") or DEFAULT_CONF)
        text = read(conf) if conf else None
        if text is None:
            return None
        path = pid_directive(text) or DEFAULT_PID_FILE
    return full(path)


def parse_stat(text):
    """(command name, parent pid) of a /proc/<pid>/stat line; the name may hold spaces and parentheses."""
    head, _sep, tail = text.rpartition(")")
    return head.partition("(")[2], int(tail.split()[1])


def _read_proc(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def children(master, proc="/proc"):
    """{pid: title} of the processes whose parent is ``master``; the title is nginx's process title."""
    found = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        stat = _read_proc(os.path.join(proc, name, "stat"))
        try:
            if stat is None or parse_stat(stat)[1] != master:
                continue
        except (ValueError, IndexError):
            continue
        title = _read_proc(os.path.join(proc, name, "cmdline"))
        if title is not None:
            found[int(name)] = title.replace("\0", " ").strip()
    return found


def accepting(title):
    """True when the process title is that of a worker that may still accept connections."""
    return "worker process" in title and "shutting down" not in title


def applied(before, now):
    """True when the children ``now`` ({pid: title}) show that nginx runs the new configuration:
    a pid not in ``before`` (the children before the reload), and no old worker accepting."""
    return any(pid not in before for pid in now) and not any(
        accepting(title) for pid, title in now.items() if pid in before)


def master_pid(path, proc="/proc"):
    """The pid that the pid file ``path`` holds when it is a running nginx's, else None."""
    try:
        pid = int((read_file(path) or "").strip())
        name = parse_stat(_read_proc(os.path.join(proc, str(pid), "stat")) or "")[0]
    except (ValueError, IndexError):
        return None
    return pid if name.startswith("nginx") else None


class ReloadWatch(object):
    """The nginx master and its children as a reload command finds them; made before the reload."""

    def __init__(self, command, proc="/proc"):
        self.proc = proc
        path = pid_file(command)
        self.master = master_pid(path, proc) if path else None
        self.before = children(self.master, proc) if self.master else {}

    def wait(self, timeout=WAIT_SECONDS, interval=POLL_SECONDS):
        """True once nginx runs the new configuration, or at once when there is nothing to watch;
        False when the master is gone or ``timeout`` seconds passed first."""
        if not self.before:
            return True
        deadline = time.monotonic() + timeout
        while True:
            if applied(self.before, children(self.master, self.proc)):
                return True
            if time.monotonic() >= deadline or not os.path.exists(os.path.join(self.proc, str(self.master))):
                return False
            time.sleep(interval)
