# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What app_info reports: the apps' containers, images and last releases.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

from ansible_collections.appfleet.docker.plugins.module_utils._docker import (
    LABEL_PREVIOUS_IMAGE,
    LABEL_SOURCE_ID,
    app_error,
)
from ansible_collections.appfleet.docker.plugins.module_utils import _releases
from ansible_collections.appfleet.docker.plugins.module_utils._container_spec import drain_deadline
from ansible_collections.appfleet.docker.plugins.module_utils._drain import drain_result
from ansible_collections.appfleet.docker.plugins.module_utils._engine import (
    app_containers,
    app_images,
    image_label,
    published_ports,
)


def container_report(c):
    """A container as app_info returns it, from its description (module_utils/_engine.py)."""
    return dict(
        id=c["id"],
        name=c["name"],
        app=c["app"],
        status=c["status"],
        running=c["state_running"],
        health=c["health_status"] or "none",
        exit_code=c["exit_code"],
        started_at=c["started_at"],
        image_id=c["image"],
        image=c["image_ref"],
        previous_image=c["labels"].get(LABEL_PREVIOUS_IMAGE) or None,
        ports=published_ports(c["ports"]),
        restart_count=c["restart_count"],
        draining_until=None,
    )


def mark_draining(report):
    """Set ``draining_until`` of an old container that drains after a swap (it is not the app's)."""
    until = drain_deadline(report["name"])
    if until is not None:
        report["draining_until"] = drain_result(report["name"], report["id"], until)["until"]
    return report


def app_report(client, name, containers, images):
    image_by_id = dict((i["id"], i) for i in images)
    for c in containers:
        img = image_by_id.get(c["image_id"])
        c["source_id"] = img["source_id"] if img else image_label(client, c["image_id"], LABEL_SOURCE_ID)
    used = set(c["image_id"] for c in containers)
    running_ids = set(c["image_id"] for c in containers if c["running"])
    for img in images:
        img["in_use"] = img["id"] in used
        img.pop("app", None)
        img.pop("created", None)
    # The app's own containers: a draining one (the old container of a swap) goes by itself.
    own = [c for c in containers if not c["draining_until"]]
    first = own[0] if own else None
    running = [c for c in own if c["running"]]
    if running:
        state = "running"
    elif own:
        state = "stopped"
    else:
        state = "absent"
    return dict(
        name=name,
        state=state,
        health=running[0]["health"] if running else "none",
        image_id=first["image_id"] if first else None,
        image=first["image"] if first else None,
        source_id=first["source_id"] if first else None,
        started_at=running[0]["started_at"] if running else None,
        rollback_image=first["previous_image"] if first else None,
        containers=containers,
        images=images,
        previous_images=[i for i in images if i["id"] not in running_ids],
    )


def last_releases(am, app):
    """The newest releases of the app's log, newest first; a bad log is a warning."""
    count = am.params["releases"]
    if count <= 0:
        return []
    try:
        entries = _releases.ReleaseLog(am.params["release_dir"], app).read()
    except _releases.ReleaseError as exc:
        am.warn("%s; app_container moves it aside on the next deploy" % (exc,), app=app)
        return []
    return [_releases.public(e) for e in reversed(entries[-count:])]


def logic(am):
    name = am.params["name"]
    if name is not None:
        err = app_error("name", name)
        if err:
            am.fail(err)
    am.app, am.step = name, "reading the app's containers and images"
    containers = [mark_draining(container_report(c)) for c in app_containers(am.client, name)]
    containers.sort(key=lambda c: (c["running"], c["started_at"] or ""), reverse=True)
    images = app_images(am.client, name)
    names = set(c["app"] for c in containers) | set(i["app"] for i in images)
    names.discard(None)
    apps = []
    for app in sorted(names):
        apps.append(app_report(am.client, app, [dict(c) for c in containers if c["app"] == app],
                               [dict(i) for i in images if i["app"] == app]))
    for report in apps:
        for c in report["containers"]:
            c.pop("app", None)
        report["releases"] = last_releases(am, report["name"])
    return dict(changed=False, apps=apps)
