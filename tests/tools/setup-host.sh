#!/usr/bin/env bash
# Make this machine able to run the lab and the tests (Debian/Ubuntu, as root):
#   - installs the Debian packages of tests/tools/host-packages.txt, each only
#     when missing (the one list of what a fresh machine lacks);
#   - starts dockerd in the background when no engine answers (machines without
#     systemd), and waits until `docker info` answers.
#   - leaves the service of Debian's docker-registry stopped and disabled when it installs
#     it (the image_pull tests run their own registry as a process).
# Idempotent: a second run installs and starts nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
while read -r package probe _; do
  case "$package" in ''|'#'*) continue ;; esac
  if [ "$package" = python3-venv ]; then
    python3 -c 'import ensurepip, venv' 2>/dev/null || need+=("$package")
  elif [ ! -e "$probe" ]; then
    need+=("$package")
  fi
done < "$here/host-packages.txt"

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # docker-registry's postinst enables and starts a registry service on :5000 where an init
  # system lets it (systemd; sysvinit with runlevels). The tests run their own registry as a
  # process on a free port: stop and disable the packaged one, so nothing stray listens on :5000.
  if [[ " ${need[*]} " == *" docker-registry "* ]]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    elif [ -s /var/run/docker-registry.pid ]; then
      /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    fi
    echo "setup: docker-registry installed; its service is not running (the tests start their own)"
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    echo "setup: starting docker with systemctl"
    systemctl start docker
  else
    echo "setup: no Docker engine answers; starting dockerd in the background (log: /var/log/dockerd.log)"
    setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not come up; see /var/log/dockerd.log" >&2; exit 1; }
fi
echo "setup: Docker engine $(docker version -f '{{.Server.Version}}') is running"
