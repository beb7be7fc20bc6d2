"""The built collection artifact: installs, holds what users run and nothing else, and its
metadata agrees with itself."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import tarfile

import pytest
import yaml

from conftest import BIN, REPO, ansible_env

# Measured at the packaging commit: 231 KB (the benchmark plots alone were 716 KB);
# 309 KB once the roles' logic moved into modules and module_utils (stop 33).
# What is left out is checked by name below; this bounds what creeps in.
MAX_BYTES = 400_000

PLAYBOOKS = ("site", "bootstrap", "hosts", "deploy", "rollback", "status", "maintenance")

# Directories and files that serve this repository (tests, lab, benchmarks, release-note
# fragments), not an installed collection; lab.yml and inventories/lab need the unshipped tests/.
NOT_SHIPPED_DIRS = (".lab", ".venv", ".collections", ".cache", ".git", "tests", "bench", "molecule",
                    "examples", "docs/benchmarks", "changelogs/fragments", "inventories/lab")
NOT_SHIPPED_FILES = ("playbooks/lab.yml", "docs/benchmarks.md", "ansible.cfg", "Makefile")
NOT_SHIPPED_PATTERNS = ("*.png", "*vault-pass*", "*vault_pass*", "*.vault-password*")

DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13"}


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    # Lab state exists in a used checkout; it must not ship.
    (REPO / ".lab").mkdir(exist_ok=True)
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force",
                            "--output-path", str(out)], cwd=REPO, env=ansible_env(),
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    tarballs = list(out.glob("appfleet-docker-*.tar.gz"))
    assert len(tarballs) == 1
    return tarballs[0]


@pytest.fixture(scope="module")
def members(tarball):
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_build_installs(tarball, tmp_path):
    dest = tmp_path / "installed"
    inst = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--force",
                           "-p", str(dest), str(tarball)], env=ansible_env(),
                          capture_output=True, text=True, check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    root = dest / "ansible_collections" / "appfleet" / "docker"
    assert (root / "MANIFEST.json").is_file()
    assert (root / "roles").is_dir()


def test_holds_what_users_run(members):
    names = set(members)
    for required in ("MANIFEST.json", "README.md", "LICENSE", "CHANGELOG.md", "meta/runtime.yml",
                     "changelogs/changelog.yaml", "docs/security.md", "inventories/production/hosts.yml",
                     "playbooks/templates/status.j2"):
        assert required in names, required
    for book in PLAYBOOKS:
        assert f"playbooks/{book}.yml" in names, book
    for role in ("bootstrap", "engine", "proxy", "apps"):
        assert f"roles/{role}/tasks/main.yml" in names, role
    assert any(n.startswith("plugins/modules/") for n in names)
    assert members["LICENSE"].lstrip().startswith(b"GNU GENERAL PUBLIC LICENSE\n")
    assert b"Version 3, 29 June 2007" in members["LICENSE"][:200]


def test_leaves_out_tests_lab_bench_and_secrets(tarball, members):
    for name in members:
        for banned in NOT_SHIPPED_DIRS:
            assert not (name == banned or name.startswith(banned + "/")), name
        assert name not in NOT_SHIPPED_FILES, name
        for pattern in NOT_SHIPPED_PATTERNS:
            assert not fnmatch.fnmatch(name.rsplit("/", 1)[-1], pattern), name
    # The example vault's password, whatever the file holding it is called.
    password = (REPO / "inventories/production/vault-password.example").read_bytes().strip()
    assert not [n for n, data in members.items() if password in data]
    assert tarball.stat().st_size < MAX_BYTES, tarball.stat().st_size


def test_metadata_agrees(members):
    manifest = json.loads(members["MANIFEST.json"])["collection_info"]
    licence = manifest["license"]
    assert licence == ["GPL-3.0-or-later"]
    for key in ("repository", "documentation", "homepage", "issues"):
        assert "example.invalid" not in (manifest.get(key) or ""), key
    requires = yaml.safe_load(members["meta/runtime.yml"])["requires_ansible"]
    assert requires.startswith(">=")
    minimum = tuple(int(p) for p in requires[2:].split(".")[:2])

    roles = sorted({n.split("/")[1] for n in members if n.startswith("roles/")})
    assert roles == ["apps", "bootstrap", "engine", "proxy"]
    for role in roles:
        info = yaml.safe_load(members[f"roles/{role}/meta/main.yml"])["galaxy_info"]
        assert [info["license"]] == licence, role
        assert tuple(int(p) for p in str(info["min_ansible_version"]).split(".")[:2]) == minimum, role
        assert "ubuntu" not in info["description"].lower(), role
        platforms = {p["name"]: sorted(DEBIAN_RELEASES[v] for v in p["versions"])
                     for p in info["platforms"]}
        assert platforms == {"Debian": ["12", "13"]}, role
        # Where the role checks the release itself, it checks the releases its meta names.
        rvars = yaml.safe_load(members.get(f"roles/{role}/vars/main.yml", b"{}")) or {}
        supported = rvars.get(f"_{role}_supported_releases")
        if supported is not None:
            assert {k: sorted(v) for k, v in supported.items()} == platforms, role
