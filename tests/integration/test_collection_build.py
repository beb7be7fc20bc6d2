"""The built collection artifact: installs, and carries no tests or lab state."""

from __future__ import annotations

import subprocess
import tarfile

from conftest import BIN, REPO, ansible_env


def test_build_installs_and_leaves_out_tests_and_lab_state(tmp_path):
    # Lab state and test output exist in a used checkout; they must not ship.
    (REPO / ".lab").mkdir(exist_ok=True)
    build = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force",
                            "--output-path", str(tmp_path)], cwd=REPO, env=ansible_env(),
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    tarballs = list(tmp_path.glob("appfleet-docker-*.tar.gz"))
    assert len(tarballs) == 1
    with tarfile.open(tarballs[0]) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names and "README.md" in names
    assert "meta/runtime.yml" in names
    assert any(n.startswith("plugins/modules/") for n in names)
    for banned in (".lab", ".venv", ".collections", ".cache", "tests", "bench/results", ".git"):
        assert not any(n == banned or n.startswith(banned + "/") for n in names), banned

    dest = tmp_path / "installed"
    inst = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--force",
                           "-p", str(dest), str(tarballs[0])], env=ansible_env(),
                          capture_output=True, text=True, check=False)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    root = dest / "ansible_collections" / "appfleet" / "docker"
    assert (root / "MANIFEST.json").is_file()
    assert (root / "roles").is_dir()
