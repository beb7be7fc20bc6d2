#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or give back the lock that makes one deploy at a time on a host
version_added: 0.2.0
description:
  - With O(state=acquired), takes the host's deploy lock for this playbook run, so that a
    second deploy of the same host (another controller, another CI job) waits for it instead
    of moving the checkout, the build or nginx under the first one. C(playbooks/deploy.yml)
    and C(playbooks/rollback.yml) hold it from the first change on a host to its record.
  - When another run holds it, waits up to O(wait) seconds, then fails naming that run
    (controller host, pid, start time, playbook) and how to clear a stale lock.
  - Taking it again in the same run changes nothing (the lease is renewed).
  - A lock older than O(lease) seconds, written before the host's last boot, or held by a
    process of this controller that is gone, is stale and taken over; the result names the
    run it was taken from.
  - With O(state=released), removes the lock when this run holds it; a lock held by another
    run is left alone (with a warning).
  - The action plugin fills O(holder) on the controller and checks there whether a holder
    recorded from this controller is still running.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is taken, released or waited for; the result says who holds the lock.
  diff_mode:
    support: none
  action:
    description: Indicates this has a corresponding action plugin, so some parts of the work run on the controller.
    support: full
    details: The action plugin fills O(holder) and checks on the controller whether a recorded holder still runs.
options:
  state:
    description:
      - V(acquired) takes the lock (waiting for another run), V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  path:
    description:
      - The lock file, an absolute path. Its directory is created (mode 0700) when missing.
      - The default is in the root-owned C(/var/lib/appfleet), beside the deploy record, not in
        the world-writable C(/run/lock), where any local user could create the file first and
        block every deploy. A reboot does not leave it blocking, since a lock written before the
        host's last boot is stale.
    type: path
    default: /var/lib/appfleet/deploy.lock
  holder:
    description:
      - Who takes the lock. The action plugin sets C(host) (the controller's host name), C(pid)
        (the C(ansible-playbook) process), C(pid_ns) (its pid namespace), C(started) (its start
        time), C(playbook) (the playbook files and the play) and C(run_id); keys given here are
        added, those are not overridden.
      - Two calls with the same C(run_id) are the same run.
    type: dict
    default: {}
  wait:
    description:
      - Seconds to wait for another run's lock before failing. V(0) fails at once.
    type: int
    default: 600
  lease:
    description:
      - Seconds after which a lock is stale whoever holds it. Longer than the longest deploy of
        one host; each O(state=acquired) of the holding run renews it.
    type: int
    default: 3600
  holder_alive:
    description:
      - Set by the action plugin, not by hand. V(false) when the holder O(checked_run_id),
        recorded from this controller, has no process any more; its lock is then taken over.
    type: bool
    default: true
  checked_run_id:
    description:
      - Set by the action plugin, not by hand. The C(run_id) of the recorded holder that
        O(holder_alive) is about; a lock now held by another run is not concerned.
    type: str
"""

EXAMPLES = r"""
- name: Take the host's deploy lock
  appfleet.docker.deploy_lock:
    state: acquired
    wait: 900

- name: Give the host's deploy lock back
  appfleet.docker.deploy_lock:
    state: released

- name: Take a lock of one's own, noting the CI job in the holder
  appfleet.docker.deploy_lock:
    path: /var/lib/myteam/maintenance.lock
    holder:
      ci_job: "{{ lookup('ansible.builtin.env', 'CI_JOB_URL') }}"
    wait: 0
"""

RETURN = r"""
lock:
  description: The lock as the task left it, and what the task did.
  returned: always
  type: dict
  contains:
    path:
      description: The lock file.
      type: str
      sample: /var/lib/appfleet/deploy.lock
    outcome:
      description:
        - V(free), V(same) (already held by this run), V(expired), V(rebooted) or V(dead) (a
          stale lock taken over) for O(state=acquired); with V(held) or V(check) in check mode
          when another run holds it.
        - V(released), V(free) (nothing to release) or V(refused) (held by another run) for
          O(state=released).
      type: str
      sample: free
    holder:
      description: The holder recorded in the lock now; empty when it is free.
      type: dict
      sample: {"host": "ci-runner-1", "pid": 4242, "pid_ns": "pid:[4026531836]", "started": "2026-12-06T18:01:07Z",
               "playbook": "playbooks/deploy.yml (Deploy the apps, one host at a time)",
               "run_id": "ci-runner-1:4242:1780768867.52"}
    acquired:
      description: When the lock was taken (UTC); empty when it is free.
      type: str
      sample: "2026-12-06T18:01:09Z"
    previous:
      description: The stale lock taken over, or the lock waited for; empty when neither.
      type: dict
      sample: {}
    waited_seconds:
      description: How long the task waited for another run.
      type: float
      sample: 0.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appfleet.docker.plugins.module_utils._deploy_lock import (
    CHECK, DEAD, EXPIRED, REBOOTED, DeployLock, DeployLockTimeout, describe)

STALE_REASONS = {EXPIRED: "older than its lease", REBOOTED: "written before the host's last boot",
                 DEAD: "its process is gone"}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            path=dict(type="path", default="/var/lib/appfleet/deploy.lock"),
            holder=dict(type="dict", default={}),
            wait=dict(type="int", default=600),
            lease=dict(type="int", default=3600),
            holder_alive=dict(type="bool", default=True),
            checked_run_id=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not params["holder"].get("host") or not params["holder"].get("run_id"):
        module.fail_json(msg="holder: give host and run_id (the action plugin sets them); got %s"
                         % sorted(params["holder"]))
    if params["wait"] < 0 or params["lease"] <= 0:
        module.fail_json(msg="wait must be >= 0 and lease > 0 seconds; got wait=%s, lease=%s"
                         % (params["wait"], params["lease"]))
    lock = DeployLock(params["path"])
    try:
        if params["state"] == "released":
            res = lock.release(params["holder"], check_mode=module.check_mode)
            if res["outcome"] == "refused":
                module.warn("deploy lock %s is held by another run, %s: left alone"
                            % (params["path"], describe(res["record"].get("holder"))))
            res["previous"], res["waited_seconds"] = {}, 0.0
        else:
            checked = params["checked_run_id"]
            res = lock.acquire(params["holder"], wait=params["wait"], lease=params["lease"],
                               dead_run_id=checked if not params["holder_alive"] else None,
                               alive_run_id=checked if params["holder_alive"] else None,
                               check_mode=module.check_mode)
            if res["outcome"] in STALE_REASONS and not module.check_mode:
                module.warn("deploy lock %s: took over the stale lock of %s (%s)" % (
                    params["path"], describe(res["previous"].get("holder")), STALE_REASONS[res["outcome"]]))
    except DeployLockTimeout as exc:
        module.fail_json(msg=str(exc), lock=dict(path=params["path"], outcome="held",
                                                 holder=exc.record.get("holder", {}),
                                                 acquired=exc.record.get("acquired", "")))
    except (IOError, OSError) as exc:
        module.fail_json(msg="deploy lock %s: %s; check that the directory is writable by the become user (path)"
                         % (params["path"], exc))
    record = res["record"] or {}
    module.exit_json(
        changed=res["changed"],
        lock=dict(path=params["path"], outcome=res["outcome"], holder=record.get("holder", {}),
                  acquired=record.get("acquired", ""), previous=res["previous"] or {},
                  waited_seconds=res["waited_seconds"]),
        # For the action plugin: the recorded holder is on this controller, unchecked.
        check_holder=res["outcome"] == CHECK and not module.check_mode,
    )


if __name__ == "__main__":
    main()
