#!/usr/bin/env bash
# Run `ansible-test sanity` on this checkout.
# ansible-test needs the collection under .../ansible_collections/appfleet/docker,
# so the files git would ship (tracked, plus untracked not ignored) are copied
# into a scratch tree first. Extra arguments go to ansible-test (e.g. --test pep8).
set -euo pipefail
# ansible-test only warns and skips a test whose program is missing: a missing tool fails here.
for tool in shellcheck git; do
  command -v "$tool" >/dev/null || { echo "sanity: $tool is missing (make setup installs it: tests/tools/host-packages.txt)" >&2; exit 1; }
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$repo/.venv}
dest=${SANITY_DIR:-$repo/.cache/sanity}/ansible_collections/appfleet/docker
rm -rf "$dest"
mkdir -p "$dest"
cd "$repo"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -C "$dest" -xf -
# ansible-test fetches a get-pip script from a host this machine cannot reach.
reqs=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py
grep -oE "pip='[0-9.]+'" "$reqs" | grep -oE '[0-9.]+' | sort -u | while read -r v; do
  cache=~/.ansible/test/cache/get_pip_${v//./_}.py
  mkdir -p "$(dirname "$cache")"; cmp -s tests/tools/get_pip_shim.py "$cache" || cp tests/tools/get_pip_shim.py "$cache"
done
cd "$dest"
# A git repo of its own so ansible-test lists exactly these files.
git init -q && git add -A && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity
exec "$venv/bin/ansible-test" sanity --venv --python 3.11 --color no "$@"
