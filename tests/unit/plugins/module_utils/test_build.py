"""Build log parsing (the step a BuildKit build failed at); the docker CLI build command (build
arg values in its environment, never in its argv)."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._build import buildkit_failed_step, cli_command, cli_reads
from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError


BUILDKIT_LOG = """\
#5 [stage-0 2/3] RUN echo hi
#5 DONE 0.3s
#7 [stage-0 3/3] RUN make test
#7 0.162 boom
#7 ERROR: executor failed running [/bin/sh -c make test]: exit code: 1
------
 > [stage-0 3/3] RUN make test:
------
executor failed running [/bin/sh -c make test]: exit code: 1
"""


@pytest.mark.parametrize("log, step", [
    (BUILDKIT_LOG, "RUN make test"),
    # without the summary block, the #N ERROR line names the step
    ("\n".join(BUILDKIT_LOG.splitlines()[:5]), "RUN make test"),
    ("#1 [internal] load build definition\n#1 DONE\n", None),
])
def test_buildkit_failed_step(log, step):
    assert buildkit_failed_step(log.splitlines()) == step


ARGS = {"TOKEN": "s3cr3t value=1", "EMPTY": "", "NODE_ENV": "production"}


def command(build_args=None, target=None):
    return cli_command("/usr/bin/docker", "unix:///run/docker.sock", "/tmp/x/iid", "/srv/ctx",
                       "/srv/ctx/Dockerfile", ARGS if build_args is None else build_args, target,
                       {"io.appfleet.app": "web"})


def test_argv_names_build_args_without_their_values():
    argv, env = command(target="prod")
    assert argv == ["/usr/bin/docker", "build", "--progress=plain", "--iidfile", "/tmp/x/iid",
                    "--file", "/srv/ctx/Dockerfile", "--label", "io.appfleet.app=web",
                    "--build-arg", "EMPTY", "--build-arg", "NODE_ENV", "--build-arg", "TOKEN",
                    "--target", "prod", "/srv/ctx"]
    for value in ("s3cr3t value=1", "production"):
        assert not [arg for arg in argv if value in arg]
    assert (env["TOKEN"], env["EMPTY"], env["NODE_ENV"]) == ("s3cr3t value=1", "", "production")
    assert env["DOCKER_HOST"] == "unix:///run/docker.sock" and env["DOCKER_BUILDKIT"] == "1"


def test_no_build_args_no_flag():
    argv, _env = command(build_args={})
    assert "--build-arg" not in argv and argv[-1] == "/srv/ctx"


@pytest.mark.parametrize("name, reads", [
    ("DOCKER_HOST", True), ("DOCKER_BUILDKIT", True), ("DOCKER_CONFIG", True), ("PATH", True), ("HOME", True),
    ("TOKEN", False), ("HTTP_PROXY", False), ("BUILDKIT_INLINE_CACHE", False), ("docker_host", False),
])
def test_cli_reads(name, reads):
    assert cli_reads(name) is reads


def test_a_build_arg_the_cli_reads_is_refused():
    with pytest.raises(AppfleetError, match="build_args: DOCKER_BUILDKIT, PATH: a variable the docker CLI reads"):
        command(build_args={"PATH": "/x", "DOCKER_BUILDKIT": "0", "OK": "1"})
