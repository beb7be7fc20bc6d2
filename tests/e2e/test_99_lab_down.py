"""`labctl down` removes what the lab made, and nothing else. Runs last."""

from __future__ import annotations

import subprocess

from lab_support import lab, labctl  # noqa: F401  # pylint: disable=unused-import


def docker_lines(*args):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True,
                          check=True).stdout.split()


def test_down_removes_every_lab_container_volume_and_network(lab):
    assert docker_lines("ps", "-aq", "--filter", "label=io.appfleet.lab=fleet")
    sentinel = "appfleet-e2e-sentinel"
    subprocess.run(["docker", "volume", "create", sentinel], check=True, capture_output=True)
    try:
        down = labctl("down")
        assert down.returncode == 0, down.stderr
        assert docker_lines("ps", "-aq", "--filter", "label=io.appfleet.lab=fleet") == []
        assert docker_lines("volume", "ls", "-q", "--filter", "label=io.appfleet.lab=fleet") == []
        for name in ("appfleet-vm1-docker", "appfleet-vm2-docker", "appfleet-git-docker"):
            assert name not in docker_lines("volume", "ls", "-q")
        assert "appfleet-lab" not in docker_lines("network", "ls", "--format", "{{.Name}}")
        # Not the lab's: left alone. The base image stays cached for the next `up`.
        assert sentinel in docker_lines("volume", "ls", "-q")
        assert docker_lines("image", "inspect", "-f", "{{.Id}}", "appfleet-lab/debian:bookworm")
    finally:
        subprocess.run(["docker", "volume", "rm", sentinel], capture_output=True, check=False)
