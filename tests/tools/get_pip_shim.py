"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test downloads get-pip.py from a host this machine cannot reach; it
runs the cached copy as `python get_pip.py [pip options] pip==X ...`. This
shim installs pip from the interpreter's own ensurepip wheel, then asks that
pip for the requested packages (from PyPI, which is reachable).
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# ensurepip points PIP_CONFIG_FILE at /dev/null in this process; the follow-up
# install must see the machine's pip configuration (CA bundle, indexes).
ENV = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
if any(not a.startswith("-") for a in args):
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + args, env=ENV))
