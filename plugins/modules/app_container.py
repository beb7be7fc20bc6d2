#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_container
short_description: Run one app's container, swapped in health-gated with rollback
description:
  - Manages the desired running container of one app (image, command, env, secret env, ports,
    volumes, networks, restart policy, labels, healthcheck, log options and resource limits).
  - Compares the whole desired config with the serving container (the image B(id), not its tag,
    plus a hash of the config kept in the C(io.appfleet.config-hash) label) and does nothing when
    they match.
  - "The hash (C(v2:<sha256>)) covers only the settings that shape the container and differ from
    their defaults, so a later release that adds an option swaps no container whose config did
    not change. A container labelled by an earlier release (a bare sha256) is compared with that
    release's hash and is not swapped either."
  - A serving container that is paused, stopped, exited or dead is not left so, and the run says
    what it found (in RV(msg) and a warning; check mode only reports it). A paused one that matches
    is unpaused, a stopped one started, both health-gated; one that differs is unpaused first, then
    replaced.
  - When they differ it rolls out with O(strategy). C(start-first) starts the new container beside
    the old one with the app port published on the app's free 127.0.0.1 slot port (see
    O(proxy.upstream_file)), waits until it is healthy, moves nginx to it without a reload (new
    requests go to the new container; keep-alive client connections stay open) and returns. The old
    container drains for O(drain_seconds) without holding up the run, renamed
    C(<container_name>--draining-<deadline>) (the deadline in Unix seconds), and a detached process
    stops it then (C(SIGTERM), then C(SIGKILL) after O(stop_timeout)) and removes it with its secret
    files. C(stop-first) stops the old container, starts the new one and waits for its health; on
    failure the old container is started again.
  - Any failure (create error, name or port conflict, never healthy, exits at once, nginx refusing
    the new upstream) removes the new container, leaves the previous one serving and fails with the
    reason and the new container's last log lines.
  - "Naming: the serving container is named O(container_name) (default: the app name). During a
    rollout the new container is named C(<container_name>--next) and renamed once the old one is
    removed or renamed to drain. Every container the module creates carries the label C(io.appfleet.app=<name>); runs
    find the app's containers by that label whatever their names."
  - Each container records the image id it replaced in the label C(io.appfleet.previous-image), so
    O(rollback=true) starts the previous image again without a build or a pull.
  - "Release log: every release that becomes serving is recorded on the host in
    C(<release_dir>/<name>.json) (time, image id and reference, source id, git commit, O(release_by),
    kind C(deploy) or C(rollback), result C(serving), C(failed) or C(rolled_back); the newest 20,
    never a secret). A rollout that fails is recorded as C(failed) and changes nothing else.
    O(rollback=true) goes to the newest good release before the serving one and is idempotent;
    O(rollback_to) goes to a named release. After a rollback the app is held: a deploy of a release
    that was rolled back from changes nothing until O(resume=true) or a new image."
  - A per-app lock file under O(lock_dir) (an C(flock), with the holder's pid, host and start time in
    it) keeps two runs for one app from interleaving; the kernel releases it when the holder dies, so
    a killed run never blocks the next one, which reports the stale holder it found.
  - At the start of each run, containers of the app left over by a killed run (the temporary
    C(--next) container, exited containers) are removed so that exactly one container remains.
    A draining container an earlier run left is waited for until its deadline (O(drain_seconds) at
    most) and removed first, so that a swap takes its loopback slot port again without an nginx
    reload; one found after its deadline with no remover process at work on it (killed, the host
    rebooted) is reported as a change (check mode only reports it), one whose remover still stops
    it (O(stop_timeout)) is not.
  - "Secrets (O(secret_env)) are delivered as files by default (O(secret_delivery=file)): one file
    per variable, mode 0400, in a root-only directory on the host
    (C(<secret_dir>/<name>/<release>/<KEY>)), bind-mounted read-only at C(/run/secrets/<KEY>), and
    the variable C(<KEY>_FILE=/run/secrets/<KEY>) tells the app where to read it. C(docker inspect),
    the engine's C(config.v2.json) and C(/proc/*/environ) show only the C(_FILE) paths and the
    mount sources, never a value. Values never appear in the module's result, diff or logs either."
  - A changed secret value makes a new release directory and swaps the container like any other
    change (the old container keeps its files until it is removed); the release directories no
    container mounts any more are removed after the swap. Change detection reads the files the
    serving container mounts; no value or hash of a value is stored in the container's config.
  - Containers run with C(no-new-privileges) and a pids limit of 1024 unless told otherwise; a
    read-only root filesystem (O(read_only), with O(tmpfs) for the paths the app writes), dropped
    or added capabilities, another user and other security options are options. They are part of
    the compared config - changing one swaps the container.
  - Published ports without an address are bound to 127.0.0.1 only; an app that must be reachable
    from elsewhere says so with an address (C(0.0.0.0:9000:9000), C([::]:9000:9000)).
  - With C(stop-first) the app is unavailable from the stop of the old container until the new one
    is healthy (its start time plus its health check time).
version_added: 0.1.0
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
  - appfleet.docker.docker
attributes:
  check_mode:
    support: full
    details: Reports what would change (and the diff) and changes nothing.
  diff_mode:
    support: full
    details: Before/after of the settings that change; secret values are masked.
options:
  name:
    description:
      - The app's name. Labels the containers (C(io.appfleet.app)), names the upstream
        C(appfleet_<name>), the lock file and the directory of the secret files.
      - Lowercase letters, digits, C(_) and C(-), starting with a letter or digit, at most 63 characters (the roles apply the same rule).
    type: str
    required: true
  state:
    description:
      - V(present) runs the app; V(absent) removes all of its containers, its secret files and its
        release log, after pointing its nginx upstream file (when there is one) at the placeholder
        the proxy role writes for an app not deployed yet (C(server 127.0.0.1:9)), so nginx never
        sends the app's traffic to a loopback port another app may get later. The file itself is
        left for the proxy role to remove.
    type: str
    choices: [present, absent]
    default: present
  image:
    description:
      - Image reference (tag or id) present on the host. The module never pulls or builds;
        use M(appfleet.docker.image_build) first. Required unless O(rollback=true) or
        O(state=absent).
    type: str
  rollback:
    description:
      - Go back to the previous good release with the config given here, health-gated like any
        rollout, without a build or a pull. O(image) is ignored.
      - The target is the newest release of the release log before the serving one whose result
        is C(serving) (failed and rolled-back releases are skipped). The release left is marked
        C(rolled_back) and a C(rollback) entry is recorded.
      - Idempotent - when the last event of the log is a rollback and that release serves, nothing
        is done (changed=false), so running it again (for example after a later host failed) does
        not move the app again.
      - Without a release log (containers made by an earlier version of the collection) the image
        in the serving container's C(io.appfleet.previous-image) label is started, as before.
    type: bool
    default: false
  rollback_to:
    description:
      - Roll back to this release (implies O(rollback=true)) - a release id of the log (see
        RV(release.id), M(appfleet.docker.app_info)) or a source revision, the git commit (or source
        id) of the image, in full or a unique prefix of at least 7 characters.
      - Fails listing the available releases when it names none of them or its image is no longer
        on the host. Nothing is done when that release already serves.
    type: str
  resume:
    description:
      - After a rollback the app is held on the release it went back to - a deploy of an image that
        was rolled back from changes nothing (changed=false, RV(held) and a warning). V(true)
        deploys O(image) anyway, which ends the hold. A different image (a new source) deploys and
        ends the hold without it.
    type: bool
    default: false
  release_by:
    description:
      - Who or what deploys, recorded in the release log (for example the controller's user).
        Not a secret - never put one here.
    type: str
  release_dir:
    description:
      - Directory of the release logs on the host, one C(<name>.json) per app (root, mode 0644).
      - A corrupt or unreadable log is renamed aside (C(<name>.json.bad-<time>)), a warning says so,
        and a new log begins.
    type: path
    default: /var/lib/appfleet/releases
  container_name:
    description:
      - Name of the serving container. Defaults to O(name).
    type: str
  command:
    description:
      - Command (exec form, a list of arguments). Defaults to the image's CMD.
    type: list
    elements: str
  env:
    description:
      - Environment variables (non-secret; shown in diffs).
    type: dict
  secret_env:
    description:
      - Secret variables, delivered as O(secret_delivery) says. Never returned or shown in diffs
        (only the names of changed variables are).
      - Names are environment variable names (letters, digits, C(_), not starting with a digit);
        with file delivery each also names its file, and C(<KEY>_FILE) must not be set otherwise.
    type: dict
  secret_delivery:
    description:
      - V(file) writes each secret to its own file, mode 0400, in a root-only directory on the
        host (C(<secret_dir>/<name>/<release>/<KEY>), written atomically), mounts it read-only at
        C(/run/secrets/<KEY>) and sets C(<KEY>_FILE=/run/secrets/<KEY>), so the app reads the
        file (the C(_FILE) convention of many images). The value is in no container config.
      - The file belongs to the uid the container runs as (O(user), else the image's C(USER), a
        name looked up in the image's C(/etc/passwd); root when neither is set), so a non-root app
        can read it and no other user of the container can. O(secret_uid) sets another owner.
      - V(env) puts the values in the container's plain environment, for apps that cannot read a
        file. It exposes them to everyone who can run C(docker inspect) (root and the C(docker)
        group), in C(/var/lib/docker/containers/*/config.v2.json), in C(/proc/<pid>/environ) of
        the app's processes and to every child process. Choose it per app, knowingly.
    type: str
    choices: [file, env]
    default: file
  secret_dir:
    description:
      - Root-only directory (made mode 0700) holding the secret files of every app, one
        sub-directory per app. It must be on persistent storage, since a container that restarts
        (dockerd restart, reboot) mounts its files again.
    type: path
    default: /etc/appfleet/secrets
  secret_uid:
    description:
      - Host uid that owns the secret files instead of the container's user, for example an
        image whose entrypoint starts as root and reads the files after dropping to its own user.
      - Required for file delivery when the engine remaps user namespaces (C(userns-remap)); give
        the host uid the container's user maps to.
    type: int
  secret_env_file:
    description:
      - Where earlier versions wrote O(secret_env) as an env file that nothing read. It is no
        longer written; a file found at this path is removed. Defaults to
        C(/etc/appfleet/env/<name>.env).
    type: path
  user:
    description:
      - User the app runs as, C(user[:group]) by name or number (C(docker run --user)). Defaults
        to the image's C(USER).
    type: str
  read_only:
    description:
      - Mount the container's root filesystem read-only (a CIS Docker Benchmark control). Give
        the paths the app writes to as O(tmpfs) or O(volumes).
    type: bool
    default: false
  tmpfs:
    description:
      - tmpfs mounts, C(/path[:options]), for example V(/tmp:rw,noexec,nosuid,size=64m). The path
        is absolute and normalised; options are mount options (C(rw), C(noexec), C(nosuid),
        C(nodev), C(size=), C(mode=), C(uid=), C(gid=) ...).
    type: list
    elements: str
  cap_drop:
    description:
      - Linux capabilities to drop (a CIS Docker Benchmark control), for example V([ALL]) or
        V([NET_RAW]); names with or without C(CAP_), any case. An unknown name is refused.
    type: list
    elements: str
  cap_add:
    description:
      - Linux capabilities to add, for example V([NET_BIND_SERVICE]) after V(cap_drop=[ALL]).
    type: list
    elements: str
  pids_limit:
    description:
      - Most processes (and threads) the container may run (the CIS Docker Benchmark's PIDs
        cgroup limit); V(-1) for no limit.
    type: int
    default: 1024
  security_opts:
    description:
      - Security options (C(docker run --security-opt)) - C(no-new-privileges[:true]),
        C(apparmor=PROFILE), C(label=...), C(seccomp=unconfined) or a seccomp profile's JSON,
        C(systempaths=unconfined). Others are refused.
      - The default keeps processes from gaining privileges through setuid binaries (a CIS
        Docker Benchmark control).
        A list given here replaces it; keep V(no-new-privileges:true) in it.
    type: list
    elements: str
    default: ["no-new-privileges:true"]
  port:
    description:
      - The container port the app listens on. Published on a free 127.0.0.1 port for the proxy
        and the HTTP health check (from O(proxy.slot_ports) when that is set).
    type: int
  published_ports:
    description:
      - Further published ports, C([ip:][host_port]:container_port[/proto]) or
        C(container_port[/proto]); an IPv6 address goes in brackets (C([::1]:9000:9000)). A fixed
        host port needs O(strategy=stop-first).
      - A spec without an address (C(9000:9000), C(9000)) is bound to 127.0.0.1 only, not to
        every address as C(docker run -p) would. To publish on every address say so with
        C(0.0.0.0:9000:9000) (IPv4) or C([::]:9000:9000) (IPv6), and open the port in the host's
        firewall (the engine role's C(DOCKER-USER) rules).
    type: list
    elements: str
  volumes:
    description:
      - Volumes and bind mounts, C(source:/container/path[:mode]).
    type: list
    elements: str
  networks:
    description:
      - Networks to connect the container to (they must exist).
    type: list
    elements: str
  restart_policy:
    description:
      - Docker restart policy.
    type: str
    choices: ["no", on-failure, always, unless-stopped]
    default: unless-stopped
  labels:
    description:
      - Extra container labels.
    type: dict
  healthcheck:
    description:
      - A Docker HEALTHCHECK for the container, replacing the image's. When omitted the image's
        own HEALTHCHECK (if any) is used; the rollout waits for Docker to report it healthy.
    type: dict
    suboptions:
      test:
        description:
          - The check, e.g. V([CMD, wget, -q, -O, /dev/null, http://127.0.0.1:8080/health]) or
            V([CMD-SHELL, "curl -fs localhost/health"]).
        type: list
        elements: str
      interval:
        description: Seconds between checks.
        type: int
      timeout:
        description: Seconds one check may take.
        type: int
      retries:
        description: Failed checks before the container is unhealthy.
        type: int
      start_period:
        description: Seconds of grace after start.
        type: int
      disable:
        description: Disable the image's HEALTHCHECK.
        type: bool
        default: false
  health:
    description:
      - How the module decides that a new container is healthy. It must be running and never
        unhealthy by Docker's health check. With O(health.path) it must answer it with 2xx/3xx,
        once if Docker's check already says healthy, else twice in a row (Docker's first check
        runs one HEALTHCHECK interval after the start; the module does not wait for it). Without
        O(health.path) it must be healthy by Docker's check when the container has one, else stay
        up for O(health.settle) seconds.
    type: dict
    suboptions:
      path:
        description:
          - HTTP path polled on the container's 127.0.0.1 published O(port). Needs O(port).
        type: str
      timeout:
        description: Seconds the new container has to become healthy.
        type: float
        default: 60
      interval:
        description: Seconds between polls.
        type: float
        default: 0.5
      settle:
        description: Seconds a container without any health check must stay up.
        type: float
        default: 2
  log_driver:
    description:
      - Docker log driver (default the engine's).
    type: str
  log_options:
    description:
      - 'Log driver options, for example V({"max-size": "10m", "max-file": "3"}).'
    type: dict
  memory:
    description:
      - Memory limit (the CIS Docker Benchmark's memory limit), a whole number with V(b), V(k),
        V(m) or V(g), for example V(512m); at least V(6m). Swap is limited to the same size
        (C(docker run --memory-swap) equal to C(--memory)), so the app never swaps; past its limit
        the kernel's OOM killer ends one of its processes.
      - Not set, the container has no memory limit.
    type: str
  cpu_shares:
    description:
      - Relative CPU weight (C(docker run --cpu-shares), the CIS Docker Benchmark's CPU priority),
        V(2) to V(262144); V(1024) is the kernel's default weight. It only matters while the
        host's CPUs are busy, and caps nothing.
      - Not set, the container has the engine's default weight.
    type: int
  cpus:
    description:
      - CPU limit in CPUs, e.g. V(0.5) (a hard cap, C(docker run --cpus)).
    type: float
  stop_timeout:
    description:
      - Seconds to wait for the app to stop before it is killed.
    type: int
    default: 10
  strategy:
    description:
      - V(start-first) runs the new container beside the old one and switches traffic without
        failed requests; V(stop-first) is for apps that must not run twice.
    type: str
    choices: [start-first, stop-first]
    default: start-first
  drain_seconds:
    description:
      - Seconds the old container keeps running after traffic was switched away from it, so
        requests in flight finish. After the switch no new request reaches the old container. The
        run does not wait for the drain (rounded up to whole seconds), see RV(draining); V(0) removes
        the old container at once, as C(stop-first) does.
      - Then the old container is stopped with O(stop_timeout) and removed by a detached process. A request in flight at the switch
        completes when it ends within O(drain_seconds), or within O(drain_seconds) plus
        O(stop_timeout) if the app finishes its requests on C(SIGTERM) before it exits (the sample apps
        do). Longer requests are cut when the old container stops; their clients must retry.
      - A WebSocket stays on the container it was opened on (nginx keeps the upgraded connection to it),
        so one opened before the switch keeps working on the old version through the drain, while
        WebSockets opened after the switch reach the new container. When the old container is stopped
        its WebSockets end. An app that closes them on C(SIGTERM) (the web sample app sends a close frame
        with code 1001, going away) tells its clients at once, O(drain_seconds) after the switch; an app
        that does not has them cut without a close frame when it exits, at the latest when Docker kills it
        after O(stop_timeout). Either way the client must reconnect, and the new connection reaches the
        new container.
    type: int
    default: 5
  proxy:
    description:
      - The host nginx in front of the app. Used when O(port) is set.
    type: dict
    suboptions:
      enabled:
        description: Switch the app's nginx upstream on each rollout.
        type: bool
        default: true
      upstream_file:
        description:
          - The upstream include for this app. It defines two upstream groups over the app's two
            loopback I(slots), C(appfleet_<name>) (slot a's port only) and C(appfleet_<name>.b) (slot b's
            port only, no backup server); the server block of the M(appfleet.docker.proxy) role picks
            C(appfleet_<name>.b) while the flag file C(<name>.slot-b) exists in the same directory.
          - A rollout starts the new container on the free slot's port and, once it is healthy, creates or
            removes the flag file. nginx reads the flag for every request, so the switch needs no reload and
            closes no client connection. The flag moves to a slot only after that slot's container passed its
            health gate, so nginx never sends a request to the standby slot's port while no container of the
            app serves it. Only a change of the slot ports (the first deploy, the first one after an upgrade,
            a slot port outside O(proxy.slot_ports), a slot port taken by another program) rewrites this
            file, tests it and reloads nginx; RV(proxy_reloads) counts those reloads.
          - After a reload the module returns only once nginx runs the new file (its new worker processes
            started, the old ones no longer accepting connections; 10 s at most, then a warning), so a task
            that probes the app right after this one reaches the new container. nginx is found by the pid
            file of the configuration that O(proxy.reload_command) names (C(-p), C(-c), C(-g)), else
            C(/run/nginx.pid); a reload command that runs no C(nginx) (a script) is not waited for.
          - A file in the format of earlier versions, whose groups name the other slot as a C(backup)
            server, is rewritten to this format (ports kept, one test and reload) on the app's next run,
            which reports RV(action=reconciled) when nothing else changes.
          - A rewrite writes the marker C(<name>.reload-pending) in the same directory first and removes it
            once nginx was reloaded. A run that finds the marker (an earlier run was killed between writing
            the file and reloading nginx) tests and reloads nginx before anything else, reports a change and
            says so in RV(proxy_repair); M(appfleet.docker.deploy_state) reports the app as needing a deploy
            while the marker exists.
          - Defaults to C(/etc/nginx/appfleet/upstreams/<name>.conf).
        type: path
      slot_ports:
        description:
          - The first and the last port of a range the app's two loopback slot ports come from. Unset (the
            default), a slot port is any free 127.0.0.1 port above 1024 (not one a container publishes, an
            upstream file names or a program holds).
          - Between the container's stop and start (an app restart, a host boot) no container publishes the
            active slot's port, and a local process that binds it then receives the app's requests. A range
            below 1024 (for example V([700, 899])) closes that gap, as only root binds there (unless the
            kernel's C(net.ipv4.ip_unprivileged_port_start), 1024 by default, is lower; the module then warns,
            as in many containers used as VMs, where it is 0). The price is that docker-bench-security's
            check 5.8 (privileged ports mapped within containers) warns for every app. The standby port
            needs no such protection, as nginx sends it nothing.
          - Ports 9, 749 to 754, 853 and 873 are never taken from the range, nor ports a container publishes,
            another app's upstream file names, or a program holds. Each app takes two ports.
          - Slot ports outside a set range (an app deployed before it was set) move into it on the app's
            next rollout, with one rewrite and nginx reload.
        type: list
        elements: int
      test_command:
        description: Command that tests the nginx config (argv list).
        type: list
        elements: str
        default: [nginx, -t]
      reload_command:
        description: Command that reloads nginx gracefully (argv list), e.g. V([systemctl, reload, nginx]).
        type: list
        elements: str
        default: [nginx, -s, reload]
  lock_dir:
    description:
      - Directory of the per-app lock files.
    type: path
    default: /run/appfleet/locks
  lock_timeout:
    description:
      - Seconds to wait for another run of the same app to finish before failing.
    type: int
    default: 300
notes:
  - The lock and the secret files are on the managed host; the module must run as root there.
  - A container made by an earlier version (secrets in its environment, no hardening options) does
    not match the new config; the first run after an upgrade swaps it once.
seealso:
  - module: appfleet.docker.image_build
"""

EXAMPLES = r"""
- name: Run web from the image just built, swapped in behind nginx
  appfleet.docker.app_container:
    name: web
    image: "{{ web_build.image.id }}"
    port: 8080
    env:
      LOG_LEVEL: info
    secret_env: "{{ vault_web_env }}"
    health:
      path: /health
      timeout: 60
    log_options:
      max-size: 10m
      max-file: "3"

- name: Run a singleton worker that must never run twice
  appfleet.docker.app_container:
    name: worker
    image: team/worker:1.4
    strategy: stop-first
    memory: 256m
    cpu_shares: 512          # half the default weight while the CPUs are busy
    published_ports:
      - "9100:9100"          # metrics: bound to 127.0.0.1:9100 only

- name: Run api hardened, its token as /run/secrets/API_TOKEN (API_TOKEN_FILE points at it)
  appfleet.docker.app_container:
    name: api
    image: team/api:3.1
    port: 8080
    health:
      path: /health
    secret_env:
      API_TOKEN: "{{ vault_api_token }}"
    user: "1000:1000"
    read_only: true
    tmpfs:
      - /tmp:rw,noexec,nosuid,size=64m
    cap_drop: [ALL]
    pids_limit: 256

- name: Roll web back to the previous good release (a second run changes nothing)
  appfleet.docker.app_container:
    name: web
    rollback: true
    port: 8080
    health:
      path: /health

- name: Roll web back to the release of git commit 3c1f0a9
  appfleet.docker.app_container:
    name: web
    rollback_to: 3c1f0a9
    port: 8080
    health:
      path: /health

- name: Deploy web again after a rollback (it is held on the rollback's release otherwise)
  appfleet.docker.app_container:
    name: web
    image: "{{ web_build.image.id }}"
    resume: true
    release_by: "{{ lookup('ansible.builtin.env', 'USER') }}"
    port: 8080

- name: Use systemd to reload nginx
  appfleet.docker.app_container:
    name: web
    image: team/web:2.0
    port: 8080
    proxy:
      reload_command: [systemctl, reload, nginx]
"""

RETURN = r"""
action:
  description: What the run did.
  returned: always
  type: str
  choices: [created, replaced, unchanged, rolled_back, started, unpaused, reconciled, removed]
  sample: replaced
container:
  description: The serving container after the run (in check mode, the current one).
  returned: when a container serves
  type: dict
  contains:
    id:
      description: Container id.
      type: str
      sample: 3f2c9a0e1b7d4f...
    name:
      description: Container name.
      type: str
      sample: web
    image:
      description: Image id the container runs.
      type: str
      sample: sha256:7d3e...
    source_id:
      description: The image's C(io.appfleet.source-id) label, if any.
      type: str
      sample: git-3c1f0a9
    previous_image:
      description: Image id this container replaced (the rollback target), if any.
      type: str
      sample: sha256:1a2b...
    ports:
      description: Published ports, as Docker reports them.
      type: dict
      sample: {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}
    host_port:
      description: The 127.0.0.1 port the app port is published on.
      type: int
      sample: 49153
    health:
      description: Docker health status, or V(none) when the container has no Docker health check.
      type: str
      sample: healthy
    status:
      description: Docker state of the container.
      type: str
      sample: running
    started_at:
      description: Start time as Docker reports it.
      type: str
      sample: "2024-05-01T10:00:00.123456789Z"
    secret_dir:
      description:
        - Host directory of the secret files the container mounts (file delivery); no values.
      type: str
      returned: when the container mounts secret files
      sample: /etc/appfleet/secrets/web/20240501T100000Z-1a2b3c4d
  sample: {}
msg:
  description:
    - Why a change is reported without the image, in check mode before the image is built.
    - What the run found wrong with the serving container (paused, stopped, exited) and what it did.
    - That nginx was tested and reloaded after an interrupted upstream rewrite (RV(proxy_repair)).
  returned: in check mode when O(image) is not on the host yet; when the serving container was not running;
    when RV(proxy_repair) is
  type: str
  sample: "app web: container web was paused; unpaused it"
removed:
  description: Short ids of containers removed (replaced or left over by an earlier run).
  returned: always
  type: list
  elements: str
  sample: [3f2c9a0e1b7d]
lock:
  description: The lock taken for the run; C(stale_holder) when a killed run's lock record was found.
  returned: when not in check mode and state is present
  type: dict
  sample: {"path": "/run/appfleet/locks/web.lock", "waited_seconds": 0.0}
upstream_file:
  description: The nginx upstream include that points at the serving container (with O(state=absent), the
    file pointed at the placeholder).
  returned: when the proxy is used
  type: str
  sample: /etc/nginx/appfleet/upstreams/web.conf
proxy_reloads:
  description:
    - How many times this run reloaded nginx. A rollout whose new container took the app's free slot
      switches with the flag file and reports V(0); the first deploy of an app, or one that had to
      give the app new slot ports, reports V(1).
  returned: when state is present and a rollout or proxy fix ran, or state is absent and the upstream changed
  type: int
  sample: 0
proxy_repair:
  description:
    - Why the run tested and reloaded nginx before anything else - an earlier run was stopped between
      writing the upstream file and reloading nginx (the marker C(<name>.reload-pending) was found). In
      check mode, that a run would do so.
  returned: when the marker was found
  type: str
  sample: "app web: an earlier run was stopped after it wrote the nginx upstream file
    /etc/nginx/appfleet/upstreams/web.conf and before nginx was reloaded with it (the marker
    /etc/nginx/appfleet/upstreams/web.reload-pending exists); tested and reloaded nginx, which now serves what
    the file says"
release:
  description:
    - The release log entry of what serves after the run. In check mode the entry of what serves
      now, except for a rollback - the release it would go to.
  returned: when state is present and the log knows the release (not for a rollback from the label)
  type: dict
  contains:
    id:
      description: Release id, C(<UTC time>-<8 hex of the image id>).
      type: str
      sample: 20240501T100000Z-7d3e1a2b
    time:
      description: When it was recorded (UTC, ISO 8601).
      type: str
      sample: "2024-05-01T10:00:00Z"
    kind:
      description: V(deploy) or V(rollback).
      type: str
      sample: deploy
    result:
      description: V(serving), V(failed) or V(rolled_back).
      type: str
      sample: serving
    image_id:
      description: Image id.
      type: str
      sample: sha256:7d3e1a2b...
    image:
      description: Image reference it was started from.
      type: str
      sample: appfleet/web:76fa0f89a984
    source_id:
      description: The image's C(io.appfleet.source-id) label.
      type: str
      sample: 76fa0f89a98498a766622b414ca8470f8498783de0575b7db30ff196656986f8
    git_commit:
      description: The image's C(io.appfleet.git-commit) label.
      type: str
      sample: 65b13cf468730ab4169d913bee1c2f5e885de941
    by:
      description: O(release_by) of the run that deployed it.
      type: str
      sample: alice
    from:
      description: For a rollback, the id of the release it left.
      type: str
      sample: 20240502T080000Z-1a2b3c4d
    note:
      description: Why the entry was added, when not by a deploy of this version.
      type: str
      sample: serving before the release log began
  sample: {"id": "20240501T100000Z-7d3e1a2b", "kind": "rollback", "result": "serving"}
draining:
  description:
    - The old container left draining by this run's start-first swap, removed at C(until) by a
      detached process (the module does not wait); V(null) when none drains. In check mode, a container
      an earlier run left draining.
  returned: when state is present
  type: dict
  contains:
    container:
      description: Its name while it drains, C(<container_name>--draining-<until in Unix seconds>).
      type: str
      sample: web--draining-1714557605
    id:
      description: Its short id.
      type: str
      sample: 3f2c9a0e1b7d
    until:
      description: When it is stopped and removed (UTC, ISO 8601).
      type: str
      sample: "2024-05-01T10:00:05Z"
  sample: {"container": "web--draining-1714557605", "id": "3f2c9a0e1b7d", "until": "2024-05-01T10:00:05Z"}
held:
  description:
    - Set when the app is held on a release after a rollback and O(image) was not deployed, with
      how to resume. The run changes nothing then (unless the config changed, which is applied to
      the held release).
  returned: when held
  type: dict
  contains:
    release:
      description: The release the app is held on.
      type: str
      sample: 20240501T100000Z-7d3e1a2b
    image_id:
      description: The image that was not deployed (it was rolled back from).
      type: str
      sample: sha256:1a2b...
    resume:
      description: How to deploy it anyway.
      type: str
      sample: "run again with resume: true (in the apps role: -e appfleet_resume=web), or deploy a new commit"
  sample: {"release": "20240501T100000Z-7d3e1a2b", "image_id": "sha256:1a2b..."}
"""

from ansible_collections.appfleet.docker.plugins.module_utils._app_container import AppContainer
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetModule


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    image=dict(type="str"),
    rollback=dict(type="bool", default=False),
    rollback_to=dict(type="str"),
    resume=dict(type="bool", default=False),
    release_by=dict(type="str"),
    release_dir=dict(type="path", default="/var/lib/appfleet/releases"),
    container_name=dict(type="str"),
    command=dict(type="list", elements="str"),
    env=dict(type="dict"),
    secret_env=dict(type="dict", no_log=True),
    secret_delivery=dict(type="str", choices=["file", "env"], default="file"),
    secret_dir=dict(type="path", default="/etc/appfleet/secrets"),
    secret_uid=dict(type="int", no_log=False),
    secret_env_file=dict(type="path"),
    user=dict(type="str"),
    read_only=dict(type="bool", default=False),
    tmpfs=dict(type="list", elements="str"),
    cap_drop=dict(type="list", elements="str"),
    cap_add=dict(type="list", elements="str"),
    pids_limit=dict(type="int", default=1024),
    security_opts=dict(type="list", elements="str", default=["no-new-privileges:true"]),
    port=dict(type="int"),
    published_ports=dict(type="list", elements="str"),
    volumes=dict(type="list", elements="str"),
    networks=dict(type="list", elements="str"),
    restart_policy=dict(type="str", choices=["no", "on-failure", "always", "unless-stopped"],
                        default="unless-stopped"),
    labels=dict(type="dict"),
    healthcheck=dict(type="dict", options=dict(
        test=dict(type="list", elements="str"),
        interval=dict(type="int"),
        timeout=dict(type="int"),
        retries=dict(type="int"),
        start_period=dict(type="int"),
        disable=dict(type="bool", default=False),
    )),
    health=dict(type="dict", apply_defaults=True, options=dict(
        path=dict(type="str"),
        timeout=dict(type="float", default=60),
        interval=dict(type="float", default=0.5),
        settle=dict(type="float", default=2),
    )),
    log_driver=dict(type="str"),
    log_options=dict(type="dict"),
    memory=dict(type="str"),
    cpu_shares=dict(type="int"),
    cpus=dict(type="float"),
    stop_timeout=dict(type="int", default=10),
    strategy=dict(type="str", choices=["start-first", "stop-first"], default="start-first"),
    drain_seconds=dict(type="int", default=5),
    proxy=dict(type="dict", apply_defaults=True, options=dict(
        enabled=dict(type="bool", default=True),
        upstream_file=dict(type="path"),
        test_command=dict(type="list", elements="str", default=["nginx", "-t"]),
        reload_command=dict(type="list", elements="str", default=["nginx", "-s", "reload"]),
        slot_ports=dict(type="list", elements="int"),
    )),
    lock_dir=dict(type="path", default="/run/appfleet/locks"),
    lock_timeout=dict(type="int", default=300),
)


def main():
    wrapper = AppfleetModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    app = AppContainer(wrapper)
    wrapper.run(lambda w: app.run())


if __name__ == "__main__":
    main()
