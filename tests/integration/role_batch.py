"""Run a role once over many bad-input cases, and read each case's outcome apart.

Running ``ansible-playbook`` once per case costs seconds of start-up and fact
gathering each time. A :class:`RoleBatch` instead writes an inventory with one
host per case (``case-000``, ``case-001``, ... all local connections to this
machine, the case's role variables as host vars), runs the role over all of
them in one ``--check --diff`` play, and cuts the output up per host:

- the host's failure lines (``fatal: [case-NNN]: FAILED! => {...}`` and, for a
  loop task, its ``failed: [case-NNN] (item=...) => {...}`` lines), only those
  of the first task that failed for it;
- the TASK header those lines appear under (the task that failed for it);
- the host's PLAY RECAP row.

:func:`assert_refused` then checks one case as a run of its own was checked:
it failed, in one of the role's checks, with every needle in that host's own
failure message, and nothing changed before.

Host vars sit where play vars sat (above role defaults, below role vars), so a
case's variables win and lose against the role exactly as before.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from conftest import BIN, REPO, ansible_env

# The checks read the distribution facts only (distribution, its versions,
# os_family); the other facts the roles read come after them, or have defaults.
# Every case is this machine: the facts are gathered once (run_once gives a
# setup's facts to every host of the play), not once per case.
GATHER_SUBSET = ["!all", "!min", "distribution"]
FORKS = 8

_HEADER = re.compile(r"^(TASK|RUNNING HANDLER|PLAY) \[(.*)\] \**\s*$")
_FAILURE = re.compile(r"^(?:fatal: \[([^\]]+)\]: FAILED!|failed: \[([^\]]+)\] \(item=.*?\)) => (.*)$")
_RECAP = re.compile(r"^(\S+)\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
# A failing task must be one of the role's input checks, or its argument spec.
CHECK_TASK = re.compile(r"(Check|Validating arguments)")


@dataclass
class Outcome:
    """What one case (one host) did in the batch run."""

    host: str
    returncode: int                         # of the whole batch run
    task: str | None = None                 # the TASK header of the host's first failure
    messages: list[str] = field(default_factory=list)  # each failure line's result as printed, then its msg
    recap: dict | None = None               # ok/changed/unreachable/failed of its PLAY RECAP row
    log: str = ""                           # every output line naming this host, for error messages
    tail: str = ""                          # the end of the whole run's output, for error messages

    @property
    def message(self):
        """The host's failure output, whitespace squeezed as the old per-run tests did."""
        return re.sub(r"\s+", " ", " ".join(self.messages))


class BatchGroup:
    """The batches of one test module: the first outcome asked for starts them
    all, side by side (one ansible-playbook leaves the second core mostly idle)."""

    def __init__(self):
        self.batches = []

    def role(self, role):
        batch = RoleBatch(role, self)
        self.batches.append(batch)
        return batch

    def start(self):
        for batch in self.batches:
            if batch.proc is None:
                batch.start()
                atexit.register(batch.stop)


class RoleBatch:
    """Cases for one role, run together the first time an outcome is asked for.

    ``add(key, role_vars, os_family=..., distribution=...)`` declares a case;
    a case with ``os_family`` pretends (set_fact, cacheable, as the old tests
    did) to be that OS family and distribution (default: the family).
    """

    def __init__(self, role, group=None):
        self.role = role
        self.group = group
        self.cases = {}
        self.names = {}
        self.proc = None
        self._tmp = None
        self._outcomes = None
        self.stdout = ""

    def add(self, key, role_vars, os_family=None, distribution=None):
        assert key not in self.cases, key
        host_vars = dict(role_vars)
        if os_family:
            host_vars["appfleet_test_os_family"] = os_family
            host_vars["appfleet_test_distribution"] = distribution or os_family
        self.cases[key] = host_vars

    def outcome(self, key):
        """The Outcome of case ``key`` (the first call runs the batch)."""
        if self._outcomes is None:
            if self.group:
                self.group.start()
            elif self.proc is None:
                self.start()
            self._outcomes = self._wait()
        return self._outcomes[key]

    def start(self):
        """Write the inventory and the play, and start ansible-playbook."""
        hosts = {}
        for index, (key, host_vars) in enumerate(self.cases.items()):
            name = "case-%03d" % index
            self.names[key] = name
            hosts[name] = dict(host_vars, ansible_connection="local", ansible_python_interpreter=sys.executable)
        play = {
            "name": "Bad input to %s" % self.role,
            "hosts": "all",
            "gather_facts": False,
            "pre_tasks": [{
                "name": "Gather the distribution facts of this machine, once for all cases",
                "ansible.builtin.setup": {"gather_subset": GATHER_SUBSET},
                "run_once": True,
            }, {
                "name": "Pretend to be another OS family",
                "ansible.builtin.set_fact": {"os_family": "{{ appfleet_test_os_family }}",
                                             "distribution": "{{ appfleet_test_distribution }}",
                                             "cacheable": True},
                "when": "appfleet_test_os_family is defined"}],
            "roles": [{"role": "appfleet.docker." + self.role}],
        }
        self._tmp = Path(tempfile.mkdtemp(prefix="role-batch-%s-" % self.role))
        (self._tmp / "cases.json").write_text(json.dumps({"all": {"hosts": hosts}}, indent=1))
        (self._tmp / "play.yml").write_text(json.dumps([play], indent=1))
        env = ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_STDOUT_CALLBACK="default")
        with open(self._tmp / "stdout", "w") as out, open(self._tmp / "stderr", "w") as err:
            self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                [str(BIN / "ansible-playbook"), str(self._tmp / "play.yml"), "-i", str(self._tmp / "cases.json"),
                 "--check", "--diff", "--forks", str(FORKS)],
                cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def stop(self):
        """End a batch nobody waited for (its tests were deselected)."""
        if self._outcomes is None and self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _wait(self, timeout=1800):
        try:
            returncode = self.proc.wait(timeout=timeout)
            stdout = (self._tmp / "stdout").read_text()
            self.stdout = stdout + "\n--- stderr ---\n" + (self._tmp / "stderr").read_text()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            shutil.rmtree(self._tmp, ignore_errors=True)
        by_host = parse(stdout, returncode, set(self.names.values()))
        for outcome in by_host.values():
            outcome.tail = self.stdout[-3000:]
        return {key: by_host[name] for key, name in self.names.items()}


def parse(stdout, returncode, hosts):
    """Cut an ansible-playbook output (default callback, JSON results) up per host."""
    outcomes = {name: Outcome(host=name, returncode=returncode) for name in hosts}
    task = None
    in_recap = False
    for line in stdout.splitlines():
        header = _HEADER.match(line)
        if header or line.startswith("PLAY RECAP "):
            task = header.group(2) if header and header.group(1) != "PLAY" else None
            in_recap = not header
            continue
        recap = _RECAP.match(line) if in_recap else None
        if recap and recap.group(1) in outcomes:
            outcome = outcomes[recap.group(1)]
            outcome.log += line + "\n"
            outcome.recap = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recap.groups()[1:])))
            continue
        failure = _FAILURE.match(line)
        if failure:
            outcome = outcomes[failure.group(1) or failure.group(2)]
            if outcome.task is None:
                outcome.task = task
            if outcome.task == task:
                outcome.messages.append(failure.group(3))
                outcome.messages.append(_msg(failure.group(3)))
        for name in re.findall(r"\[(case-\d{3})\]", line):
            if name in outcomes:
                outcomes[name].log += "%s | %s\n" % (task, line)
    return outcomes


def _msg(result):
    """The ``msg`` of a printed JSON result, as the [ERROR] lines show it (a
    JSON-escaped newline is a backslash and an n there, as in the message)."""
    try:
        return str(json.JSONDecoder().raw_decode(result)[0].get("msg", ""))
    except (ValueError, AttributeError):
        return ""


def assert_refused(outcome, *needles):
    """The case's run failed in one of the role's checks, every needle is in
    the host's own failure message, and its recap shows changed=0 failed=1."""
    context = "%s\n%s" % (outcome.host, outcome.log[-4000:] or "(not in the output)\n" + outcome.tail)
    assert outcome.returncode != 0, context
    assert outcome.messages, ("no failure for this host", context)
    for needle in needles:
        assert needle in outcome.message, (needle, outcome.message[-3000:], context)
    assert outcome.recap and outcome.recap["changed"] == 0 and outcome.recap["failed"] == 1, (outcome.recap, context)
    assert outcome.task and CHECK_TASK.search(outcome.task), (outcome.task, context)
