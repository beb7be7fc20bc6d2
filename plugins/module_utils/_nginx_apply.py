# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put the proxy role's nginx files in place only if nginx accepts the whole result.

Private to this collection (leading underscore): not a public API.

The candidates the role rendered, given as contents (``files``, ``private_keys``)
or as a stage directory: conf.d/*, sites/<app>.conf, upstreams/<app>.conf
(placeholders, used only where the app has no upstream yet: app_container owns
that file), tls/<app>.crt and .key.

1. plan_changes(): what differs from the live files (content, mode, root
   ownership), server blocks and TLS files of apps no longer staged, absent paths.
2. candidate_test(): a private copy of the whole configuration with the changes
   made, its absolute paths pointed into the copy, tested with `nginx -t -c`.
3. install(): atomic renames (TLS files first, removals last), `nginx -t` on the
   live configuration, and every previous file put back if that fails.

The pure parts (plan_changes, explain, rewrite_paths, install_order, file_diff)
take and return plain values; the file operations are kept apart below them.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections import namedtuple

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import atomic_file, remove_file
from ansible_collections.appfleet.docker.plugins.module_utils._proxy import upstream_file

# The stage's subdirectories, in the order files are planned.
KINDS = ("tls", "upstreams", "conf.d", "sites")
# Files of these kinds that are no longer staged are removed.
PRUNE = {"sites": (".conf",), "tls": (".crt", ".key")}
# Install order: files others refer to land first and go last, so a run cut
# short leaves no server block pointing at a missing certificate or upstream.
ORDER = {"tls": 0, "upstreams": 1, "conf.d": 2, "sites": 3, "absent": 4}
# Directives of a site's server block, and the per-app option behind each.
SITE_OPTIONS = {
    "listen": "proxy.listen (or proxy_listen_port / proxy_tls_listen_port)",
    "server_name": "proxy.server_name",
    "ssl_certificate": "proxy.tls.certificate",
    "ssl_certificate_key": "proxy.tls.key",
    "proxy_connect_timeout": "proxy.connect_timeout",
    "proxy_read_timeout": "proxy.read_timeout",
    "proxy_send_timeout": "proxy.send_timeout",
    "client_max_body_size": "proxy.client_max_body_size",
    "add_header": "proxy.hsts_max_age",
    "return": "proxy.redirect_http",
}
# Directives of the http-level file, and the role variable behind each.
CONF_OPTIONS = {
    "proxy_connect_timeout": "proxy_connect_timeout",
    "proxy_read_timeout": "proxy_read_timeout",
    "proxy_send_timeout": "proxy_send_timeout",
    "client_max_body_size": "proxy_client_max_body_size",
    "listen": "proxy_listen_port / proxy_tls_listen_port",
    "include": "proxy_upstream_dir / proxy_sites_dir",
}
LOCATION_RE = re.compile(r" in (/\S+?):([0-9]+)")
STAMP_RE = re.compile(r"^[0-9/]+ [0-9:]+ \[(\w+)\] [0-9#]+: ")
QUOTED_PATH_RE = re.compile(r'"(/[^"]+)"')
SEVERE_RE = re.compile(r"\[(emerg|alert|crit)\]")
REFUSED = ("nginx -t refused the new configuration, so it was not put in place and the "
           "running nginx keeps the previous one: %s")
CANDIDATE_PREFIX = "appfleet-nginx-candidate."
# A staged file's name: no directory part, not hidden.
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# A file as found: content (bytes, None for a link), mode, owner, group, link target.
FileState = namedtuple("FileState", "content mode uid gid link")
# One planned change: kind (a KINDS entry or "absent"), file name, live path,
# action (create, update, remove), old and new FileState (None: absent).
Change = namedtuple("Change", "kind name path action old new")


class NginxRefused(AppfleetError):
    """nginx refused a configuration; the message names the app and the option."""


class Layout(object):
    """The directories the module manages, normalised, checked once."""

    def __init__(self, stage, conf_dir, sites_dir, upstream_dir, tls_dir, nginx_conf):
        given = dict(conf_dir=conf_dir, sites_dir=sites_dir, upstream_dir=upstream_dir,
                     tls_dir=tls_dir, nginx_conf=nginx_conf)
        if stage is not None:
            given["stage"] = stage
        for option, path in sorted(given.items()):
            if not os.path.isabs(path or ""):
                raise AppfleetError("%s must be an absolute path, got %r; give the full path" % (option, path))
        self.stage = os.path.normpath(stage) if stage is not None else None
        self.nginx_conf = os.path.normpath(nginx_conf)
        self.dirs = {"conf.d": os.path.normpath(conf_dir), "sites": os.path.normpath(sites_dir),
                     "upstreams": os.path.normpath(upstream_dir), "tls": os.path.normpath(tls_dir)}

    def target(self, kind, name):
        """The live path of staged file ``name`` of ``kind``."""
        if kind == "upstreams" and name.endswith(".conf"):
            return upstream_file(name[:-len(".conf")], self.dirs["upstreams"])
        return os.path.join(self.dirs[kind], name)

    def roots(self):
        """The directories copied for the candidate test: nginx.conf's and the managed ones."""
        return sorted({os.path.dirname(self.nginx_conf)} | set(self.dirs.values()), key=len)


# ---- pure parts ------------------------------------------------------------------------

def plan_changes(layout, staged, live, listing, absent):
    """The list of Change to make the live files what the stage holds.

    ``staged``: {kind: {name: FileState}}; ``live``: {path: FileState or None} for every
    path involved; ``listing``: {kind: names of the files in that live directory} for the
    kinds of PRUNE; ``absent``: paths to remove.
    """
    changes = []
    for kind in KINDS:
        names = staged.get(kind, {})
        for name in sorted(names):
            path = layout.target(kind, name)
            old, new = live.get(path), names[name]
            if kind == "upstreams" and old is not None:
                continue  # app_container's file: never replaced here.
            if old != new:
                changes.append(Change(kind, name, path, "create" if old is None else "update", old, new))
        for name in sorted(listing.get(kind, ())):
            if name not in names and name.endswith(PRUNE.get(kind, ())):
                path = os.path.join(layout.dirs[kind], name)
                changes.append(Change(kind, name, path, "remove", live.get(path), None))
    for path in absent:
        if live.get(path) is not None:
            changes.append(Change("absent", os.path.basename(path), path, "remove", live[path], None))
    return changes


def install_order(changes):
    """Writes first (roots first), then removals (in the reverse order)."""
    return sorted(changes, key=lambda c: (c.new is None, ORDER[c.kind] * (-1 if c.new is None else 1)))


def owner_of(path, layout):
    """(who, {directive: option}) for messages about a managed file; (None, {}) otherwise."""
    directory, name = os.path.split(path)
    app = os.path.splitext(name)[0]
    if directory == layout.dirs["sites"]:
        return "app %s" % app, SITE_OPTIONS
    if directory == layout.dirs["tls"]:
        option = "proxy.tls.key" if name.endswith(".key") else "proxy.tls.certificate"
        return "app %s, %s" % (app, option), {}
    if directory == layout.dirs["upstreams"]:
        return "app %s's upstream (written by app_container)" % app, {}
    if directory == layout.dirs["conf.d"]:
        return "the proxy role's http-level settings", CONF_OPTIONS
    return None, {}


def explain(output, layout, files):
    """nginx's message, led by the app and option of each file and line it names.

    ``files``: {path: bytes} of the configuration nginx read, to quote the line.
    """
    text = output.strip()
    notes = []
    for match in LOCATION_RE.finditer(text):
        path, line = match.group(1), int(match.group(2))
        who, options = owner_of(path, layout)
        if not who:
            continue
        lines = files.get(path, b"").decode("utf-8", "replace").splitlines()
        shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        option = options.get(shown.split()[0]) if shown else None
        notes.append("%s%s: line %d of %s%s" % (who, ", option " + option if option else "",
                                                line, path, " is `%s`" % shown if shown else ""))
    # Files nginx could not load (certificates, keys) are quoted in its message.
    for path in sorted(set(QUOTED_PATH_RE.findall(text))):
        who = owner_of(path, layout)[0]
        if who and os.path.dirname(path) == layout.dirs["tls"]:
            notes.append("%s: %s" % (who, path))
    errors = [STAMP_RE.sub(r"nginx: [\1] ", line) for line in text.splitlines() if SEVERE_RE.search(line)]
    message = " ".join(errors) or text[-1500:]
    return ("%s -- %s" % ("; ".join(dict.fromkeys(notes)), message)) if notes else message


def path_pattern(roots):
    """A regex matching an absolute path that starts with one of ``roots`` (whole components)."""
    longest_first = sorted(roots, key=len, reverse=True)
    return re.compile(r"(?<![\w./-])(%s)(?=[/\s;\"'}*]|$)" % "|".join(re.escape(r) for r in longest_first), re.M)


def rewrite_paths(text, pattern, tree):
    """``text`` with every path ``pattern`` matches moved under ``tree``."""
    return pattern.sub(lambda m: tree + m.group(1), text)


def is_private_key(change):
    return change.kind == "tls" and change.name.endswith(".key")


def _text(state):
    if state is None:
        return ""
    if state.link is not None:
        return "(symbolic link to %s)\n" % state.link
    return state.content.decode("utf-8", "replace")


def file_diff(change):
    """The before/after of one change for Ansible's diff output; never a key's content."""
    old, new = change.old, change.new
    if is_private_key(change):
        before = "(private key)\n" if old is not None else ""
        after = "(private key changed)\n" if new is not None else ""
    else:
        before, after = _text(old), _text(new)
        if old is not None and new is not None and before == after:
            before = "(mode %s, owner %d:%d)\n" % (oct(old.mode or 0), old.uid, old.gid)
            after = "(mode %s, owner %d:%d)\n" % (oct(new.mode or 0), new.uid, new.gid)
    return {"before_header": change.path, "after_header": change.path, "before": before, "after": after}


# ---- file operations -------------------------------------------------------------------

def read_state(path):
    """The FileState of ``path`` (a link is not followed), or None when it does not exist."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return FileState(None, None, info.st_uid, info.st_gid, os.readlink(path))
    with open(path, "rb") as handle:
        return FileState(handle.read(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, None)


def staged_from_contents(files, private_keys):
    """The candidates given as contents, as scan() reads a stage: {kind: {name: FileState}}.

    ``files``: {"<kind>/<name>": text} (a private key in ``tls`` is refused there: it
    goes in ``private_keys``, {app: text}, installed as tls/<app>.key, mode 0600).
    """
    staged = dict((kind, {}) for kind in KINDS)
    for key in sorted(files or {}):
        kind, _sep, name = key.partition("/")
        if kind not in KINDS or not FILE_NAME_RE.match(name) or (kind == "tls" and name.endswith(".key")):
            raise AppfleetError("files: %r is not <kind>/<name> with kind one of %s and a plain file name "
                                "(private keys go in private_keys)" % (key, ", ".join(sorted(KINDS))))
        staged[kind][name] = FileState(_bytes(files[key]), 0o644, 0, 0, None)
    for app in sorted(private_keys or {}):
        name = "%s.key" % app
        if not FILE_NAME_RE.match(name):
            raise AppfleetError("private_keys: %r is not an app name" % app)
        staged["tls"][name] = FileState(_bytes(private_keys[app]), 0o600, 0, 0, None)
    return staged


def _bytes(text):
    return text.encode("utf-8") if not isinstance(text, bytes) else text


def read_stage(stage):
    """The candidates of a stage directory: {kind: {name: FileState}}."""
    staged = {}
    for kind in KINDS:
        directory = os.path.join(stage, kind)
        staged[kind] = {}
        for name in (sorted(os.listdir(directory)) if os.path.isdir(directory) else []):
            state = read_state(os.path.join(directory, name))
            # Root owns every installed file, whoever rendered the candidate.
            staged[kind][name] = state._replace(uid=0, gid=0)
    return staged


def scan(layout, absent, staged):
    """(staged, live, listing) as plan_changes takes them, the live files read from the disk."""
    live, listing = {}, {}
    for kind in KINDS:
        for name in staged.get(kind, {}):
            path = layout.target(kind, name)
            live[path] = read_state(path)
        live_dir = layout.dirs[kind]
        if kind in PRUNE and os.path.isdir(live_dir):
            listing[kind] = [name for name in sorted(os.listdir(live_dir))
                             if not os.path.isdir(os.path.join(live_dir, name))]
            for name in listing[kind]:
                path = os.path.join(live_dir, name)
                live[path] = read_state(path)
    for path in absent:
        live[path] = read_state(path)
    return staged, live, listing


def run_test(run_command, nginx, conf):
    """(rc, output) of ``nginx -t -c conf``."""
    rc, out, err = run_command([nginx, "-t", "-c", conf])
    return rc, (out or "") + (err or "")


def candidate_test(layout, changes, run_command, nginx):
    """nginx -t on a private copy of the whole configuration with ``changes`` made.

    Raises NginxRefused with nginx's message (explained) when nginx refuses it.
    """
    roots = layout.roots()
    tmp = tempfile.mkdtemp(prefix=CANDIDATE_PREFIX)
    tree = os.path.join(tmp, "root")
    try:
        for root in roots:
            if os.path.isdir(root) and not os.path.exists(tree + root):
                shutil.copytree(root, tree + root, symlinks=False, ignore_dangling_symlinks=True)
        files = {}
        for change in changes:
            target = tree + change.path
            if os.path.lexists(target):
                os.unlink(target)
            if change.new is not None:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as handle:
                    handle.write(change.new.content)
                files[change.path] = change.new.content
        # Absolute paths in the copied files lead into the tree, not to the live files.
        pattern = path_pattern(roots)
        tls_root = tree + layout.dirs["tls"] + "/"
        for directory, _subdirs, names in os.walk(tree):
            for name in names:
                path = os.path.join(directory, name)
                if path.startswith(tls_root) or os.path.islink(path):
                    continue
                with open(path, "rb") as handle:
                    data = handle.read()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                files.setdefault(path[len(tree):], data)
                rewritten = rewrite_paths(text, pattern, tree)
                if rewritten != text:
                    with open(path, "w", encoding="utf-8") as handle:
                        handle.write(rewritten)
        rc, output = run_test(run_command, nginx, tree + layout.nginx_conf)
        if rc != 0:
            raise NginxRefused(REFUSED % explain(output.replace(tree, ""), layout, files))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def put(path, state):
    """Make ``path`` hold ``state`` (a FileState), or remove it when ``state`` is None."""
    if state is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    if state.link is not None:
        tmp = os.path.join(directory, ".%s.%s.tmp" % (os.path.basename(path), os.getpid()))
        remove_file(tmp)
        os.symlink(state.link, tmp)
        try:
            os.replace(tmp, path)
        except BaseException:
            remove_file(tmp)
            raise
        return
    # atomic_file's check runs on the written temporary file before its rename: the owner is set there.
    with atomic_file(path, mode=state.mode, check=lambda tmp: os.chown(tmp, state.uid, state.gid)) as handle:
        handle.write(state.content)


def install(layout, changes, run_command, nginx):
    """Make the changes; if the live nginx -t then fails, put every previous file back."""
    done = []
    try:
        for change in install_order(changes):
            put(change.path, change.new)
            done.append(change)
        rc, output = run_test(run_command, nginx, layout.nginx_conf)
        if rc != 0:
            files = dict((c.path, c.new.content) for c in changes if c.new is not None and c.new.content is not None)
            raise NginxRefused(REFUSED % explain(output, layout, files))
    except (NginxRefused, OSError) as exc:
        problems = []
        for change in reversed(done):
            try:
                put(change.path, change.old)
            except OSError as exc2:
                problems.append("%s: %s" % (change.path, exc2))
        note = ("the previous files were put back" if not problems
                else "putting the previous files back failed for %s; put them back by hand or run again"
                % "; ".join(problems))
        if isinstance(exc, NginxRefused):
            raise NginxRefused("%s (%s)" % (exc.msg, note))
        raise AppfleetError("putting the nginx files in place failed: %s (%s)" % (exc, note))


def apply(params, check_mode, diff_mode, run_command):
    """The module's logic: the result dict; raises AppfleetError (nothing changed, or put back)."""
    layout = Layout(params["stage"], params["conf_dir"], params["sites_dir"], params["upstream_dir"],
                    params["tls_dir"], params["nginx_conf"])
    absent = [os.path.normpath(path) for path in params["absent"] or []]
    for path in absent:
        if not os.path.isabs(path):
            raise AppfleetError("absent must list absolute paths, got %r; give the full path" % path)
    try:
        if layout.stage is not None:
            staged = read_stage(layout.stage)
        else:
            staged = staged_from_contents(params.get("files"), params.get("private_keys"))
        changes = plan_changes(layout, *scan(layout, absent, staged), absent=absent)
        if changes:
            candidate_test(layout, changes, run_command, params["nginx"])
    except OSError as exc:
        raise AppfleetError("reading or testing the candidate nginx configuration failed: %s; nothing "
                            "was changed" % exc)
    if changes and not check_mode:
        install(layout, changes, run_command, params["nginx"])
    result = {"changed": bool(changes),
              "changes": [{"path": c.path, "action": c.action} for c in changes]}
    if diff_mode:
        result["diff"] = [file_diff(c) for c in changes]
    return result
