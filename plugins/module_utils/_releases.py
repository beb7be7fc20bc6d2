# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release log of an app on one host: which releases became serving, which failed.

Private to this collection (leading underscore): not a public API.

One JSON file per app (``<release_dir>/<app>.json``, root, mode 0644, written
atomically) holds the newest MAX_ENTRIES releases, oldest first. An entry
records what was started and how it went, never a secret:

- ``id``: release id, ``<UTC time>-<8 hex of the image id>``;
- ``time`` (UTC, ISO 8601), ``kind`` (``deploy`` or ``rollback``),
  ``result`` (``serving``: it became serving and is good; ``rolled_back``: it
  served and was rolled back from; ``failed``: it never became serving);
- ``image_id``, ``image`` (the reference it was started from), ``source_id``
  and ``git_commit`` (the image's labels), ``by`` (who deployed it), and for a
  rollback ``from`` (the release it left).

The functions at the top are pure (unit tested); ReleaseLog reads and writes
the file.
"""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._files import write_file_atomic

LOG_VERSION = 1
MAX_ENTRIES = 20
DEFAULT_RELEASE_DIR = "/var/lib/appfleet/releases"
KINDS = ("deploy", "rollback")
RESULTS = ("serving", "failed", "rolled_back")
# A source revision given to a named rollback: a git commit (or source id) prefix.
MIN_REVISION_PREFIX = 7
REVISION_RE = re.compile(r"^[0-9a-f]{%d,64}\Z" % MIN_REVISION_PREFIX)
ENTRY_KEYS = ("id", "time", "kind", "result", "image_id", "image", "source_id", "git_commit", "by", "from", "note")


class ReleaseError(AppfleetError):
    """The release log cannot answer (no such release, ambiguous name); message ready for the user."""


# ---------------------------------------------------------------- pure logic

def utc_now(now=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def short_image(image_id):
    text = str(image_id or "")
    if text.startswith("sha256:"):
        text = text[len("sha256:"):]
    return text[:12]


def new_entry(entries, kind, result, image_id, image=None, source_id=None, git_commit=None, by=None,
              from_id=None, note=None, now=None):
    """A new log entry with an id not used in ``entries``."""
    if kind not in KINDS:
        raise ValueError("kind %r" % (kind,))
    if result not in RESULTS:
        raise ValueError("result %r" % (result,))
    stamp = now if now is not None else time.time()
    base = "%s-%s" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(stamp)), short_image(image_id)[:8])
    used = set(e.get("id") for e in entries)
    rid, n = base, 1
    while rid in used:
        n += 1
        rid = "%s.%d" % (base, n)
    entry = dict(id=rid, time=utc_now(stamp), kind=kind, result=result, image_id=image_id, image=image,
                 source_id=source_id, git_commit=git_commit, by=by)
    if from_id:
        entry["from"] = from_id
    if note:
        entry["note"] = note
    return entry


def trim(entries, keep=MAX_ENTRIES):
    return list(entries[-keep:]) if keep > 0 else []


def last_event(entries):
    """The newest entry that changed what serves (failed ones did not)."""
    for entry in reversed(entries):
        if entry.get("result") != "failed":
            return entry
    return None


def current_index(entries, serving_image):
    """Index of the newest entry that is what serves now (image ``serving_image``), or None."""
    for i in range(len(entries) - 1, -1, -1):
        entry = entries[i]
        if entry.get("image_id") == serving_image and entry.get("result") != "failed":
            return i
    return None


def describe(entry):
    """``<id> (<revision>, <result>)`` for messages."""
    revision = entry.get("git_commit") or entry.get("source_id") or short_image(entry.get("image_id"))
    return "%s (%s, %s)" % (entry.get("id"), str(revision)[:12], entry.get("result"))


def available(entries, present=None):
    """Newest first, one per image: the releases a named rollback can go to."""
    seen = set()
    out = []
    for entry in reversed(entries):
        image = entry.get("image_id")
        if entry.get("result") == "failed" or image in seen:
            continue
        seen.add(image)
        if present is None or present(image):
            out.append(entry)
    return out


def find_release(entries, ref):
    """The newest entry named by ``ref``: a release id, or a git commit / source id (a prefix of
    at least 7 hex characters). Raises ReleaseError when none or several releases match."""
    ref = str(ref or "").strip()
    usable = [e for e in entries if e.get("result") != "failed"]
    for entry in reversed(usable):
        if entry.get("id") == ref:
            return entry
    if not REVISION_RE.match(ref.lower()):
        raise ReleaseError("%r is no release id of the log and not a source revision (a git commit or "
                           "source id, at least %d hex characters)" % (ref, MIN_REVISION_PREFIX))
    ref = ref.lower()
    matches = [e for e in usable
               if str(e.get("git_commit") or "").lower().startswith(ref)
               or str(e.get("source_id") or "").lower().startswith(ref)]
    images = []
    for entry in matches:
        if entry.get("image_id") not in images:
            images.append(entry.get("image_id"))
    if not matches:
        raise ReleaseError("no release of revision %s in the log" % ref)
    if len(images) > 1:
        raise ReleaseError("revision %s is ambiguous: it matches %s; give more characters or a release id"
                           % (ref, ", ".join(describe(e) for e in available(matches))))
    return matches[-1]


def is_held(entries, serving_image, desired_image):
    """The rollback entry the app is held on, when deploying ``desired_image`` would undo it.

    Held: the last event is a rollback to the release that serves, and the
    image asked for is one that was rolled back from. A different image (a new
    source) is not held.
    """
    last = last_event(entries)
    if not last or last.get("kind") != "rollback" or last.get("image_id") != serving_image:
        return None
    if desired_image == serving_image:
        return None
    if any(e.get("image_id") == desired_image and e.get("result") == "rolled_back" for e in entries):
        return last
    return None


def plan_rollback(entries, serving_image, rollback_to=None):
    """Where a rollback goes. Returns dict(target, leaving, noop, source):

    - ``target``: the entry to start (None: the log has no answer, use the
      container's previous-image label);
    - ``leaving``: the entry of the serving release (None when unknown);
    - ``noop``: the target already serves and the last event is that rollback
      (or, for a named one, the named release serves): nothing to do;
    - ``source``: ``log`` or ``label``.

    Raises ReleaseError for a named release that is not in the log.
    """
    idx = current_index(entries, serving_image)
    leaving = entries[idx] if idx is not None else None
    if rollback_to:
        if not entries:
            raise ReleaseError("no release log for this app yet (releases are recorded from this version of "
                               "the collection on)")
        target = find_release(entries, rollback_to)
        noop = target.get("image_id") == serving_image
        return dict(target=target, leaving=None if noop else leaving, noop=noop, source="log")
    last = last_event(entries)
    if last and last.get("kind") == "rollback" and last.get("image_id") == serving_image:
        return dict(target=last, leaving=None, noop=True, source="log")
    stop = idx if idx is not None else len(entries)
    for i in range(stop - 1, -1, -1):
        entry = entries[i]
        if entry.get("result") == "serving" and entry.get("image_id") != serving_image:
            return dict(target=entry, leaving=leaving, noop=False, source="log")
    return dict(target=None, leaving=leaving, noop=False, source="label")


def record_success(entries, kind, new, serving=None, leaving=None, keep=MAX_ENTRIES):
    """The log after ``new`` became serving.

    ``serving``: an entry for the release that served before, added first when
    the log does not know it (a container from before the log). ``leaving``:
    after a rollback, the entry of the release left, marked rolled_back.
    """
    out = [dict(e) for e in entries]
    if serving is not None and current_index(out, serving["image_id"]) is None:
        out.append(serving)
        if kind == "rollback" and leaving is None:
            leaving = serving
    if kind == "rollback" and leaving is not None:
        for entry in reversed(out):
            if entry.get("id") == leaving.get("id"):
                entry["result"] = "rolled_back"
                break
        new = dict(new, **{"from": leaving.get("id")})
    out.append(new)
    return trim(out, keep)


def record_failure(entries, new, keep=MAX_ENTRIES):
    return trim([dict(e) for e in entries] + [dict(new, result="failed")], keep)


def public(entry):
    """An entry with every documented key (missing ones None)."""
    return dict((k, entry.get(k)) for k in ENTRY_KEYS)


def parse(text):
    """The entries of a log file's text; raises ValueError when it is not a release log."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("releases"), list):
        raise ValueError("not a release log (no releases list)")
    entries = data["releases"]
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("id") or entry.get("result") not in RESULTS \
                or entry.get("kind") not in KINDS or not entry.get("image_id"):
            raise ValueError("an entry is not a release: %.80r" % (entry,))
    return entries


def dump(app, entries):
    return json.dumps(dict(version=LOG_VERSION, app=app, releases=entries), indent=1, sort_keys=True) + "\n"


# ---------------------------------------------------------------- the file

class ReleaseLog(object):
    """``<directory>/<app>.json``; load() and save() report problems as warnings or ReleaseError."""

    def __init__(self, directory, app):
        self.directory = directory or DEFAULT_RELEASE_DIR
        self.app = app
        self.path = os.path.join(self.directory, "%s.json" % app)
        self.warnings = []

    def read(self):
        """Entries, [] when there is no log; raises ReleaseError (read-only callers: app_info)."""
        try:
            with open(self.path, "r") as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            if getattr(exc, "errno", None) == 2:
                return []
            raise ReleaseError("cannot read the release log %s: %s" % (self.path, exc.strerror or exc))
        try:
            return parse(text)
        except ValueError as exc:
            raise ReleaseError("the release log %s is corrupt (%s)" % (self.path, exc))

    def load(self):
        """Entries; a corrupt or unreadable log is renamed aside (with a warning) and a new one begun."""
        try:
            return self.read()
        except ReleaseError as exc:
            aside = "%s.bad-%s" % (self.path, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
            try:
                os.rename(self.path, aside)
            except OSError as err:
                raise ReleaseError("%s, and it cannot be moved aside (%s); move or fix it by hand"
                                   % (exc, err.strerror or err))
            self.warnings.append("%s; it was moved to %s and a new release log begun (rollback "
                                 "targets older than now are unknown to it)" % (exc, aside))
            return []

    def save(self, entries):
        """Write atomically (the collection's one writer), then fsync the directory."""
        write_file_atomic(self.path, dump(self.app, entries), mode=0o644, sync_dir=True)
