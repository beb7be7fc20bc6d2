"""Build log parsing: the step a BuildKit build failed at."""

from __future__ import annotations

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._build import buildkit_failed_step


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
