#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_apply
short_description: Put staged nginx files in place only if nginx accepts the whole configuration
version_added: 0.3.0
description:
  - Takes the candidate files the C(appfleet.docker.proxy) role rendered, as contents (O(files),
    O(private_keys)) or in a directory (O(stage)), and makes the live files match them, only once
    C(nginx -t) accepted the whole configuration with the candidates in place. A configuration
    nginx refuses never lands. When the live files already match, nothing is tested or changed.
  - The test runs on a private copy of the live configuration (the directory of O(nginx_conf)
    and the managed directories), whose absolute paths are pointed into the copy, so the live
    files are not touched until nginx accepted the result.
  - The files are then put in place with atomic renames (certificates and upstreams first,
    removals last), C(nginx -t) runs again on the live configuration, and every previous file is
    put back if that fails.
  - Server blocks (C(*.conf) in O(sites_dir)) and TLS files (C(*.crt), C(*.key) in O(tls_dir))
    of apps no longer staged are removed, and so is every path of O(absent).
  - An upstream file already in O(upstream_dir) belongs to M(appfleet.docker.app_container) and
    is never replaced; the staged one (a placeholder) is used only where none exists yet.
  - When nginx refuses, the module fails with nginx's message, naming the app and the option
    behind the line nginx names, and nothing is changed.
  - It does not reload nginx; notify a handler when it reports a change.
author:
  - appfleet developers (@appfleet)
extends_documentation_fragment:
  - appfleet.docker.attributes
attributes:
  check_mode:
    support: full
    details: Runs the same C(nginx -t) on the private copy and reports the changes; installs nothing.
  diff_mode:
    support: full
    details: Shows the before and after of every changed file; a private key is shown only as C((private key changed)).
options:
  stage:
    description:
      - Directory of the candidates, with the subdirectories C(conf.d), C(sites), C(upstreams) and C(tls).
      - A missing subdirectory stages no file of its kind (and so removes every server block or TLS file).
      - One of O(stage) and O(files) is required.
    type: path
  files:
    description:
      - The candidates as contents, by C(<kind>/<name>) where kind is C(conf.d), C(sites), C(upstreams)
        or C(tls) (certificates only), for example a key V(sites/web.conf) with the server block as its value. Installed
        with mode C(0644). A kind with no entry stages no file of its kind, as in O(stage).
    type: dict
  private_keys:
    description:
      - Private keys of the apps served over HTTPS, by app name, installed as C(tls/<app>.key) with
        mode C(0600). Never shown in the output or a diff. Only with O(files).
    type: dict
  conf_dir:
    description:
      - Live directory of the http-level files (the stage's C(conf.d)), for example C(/etc/nginx/conf.d).
    type: path
    required: true
  sites_dir:
    description:
      - Live directory of the apps' server blocks (the stage's C(sites)).
    type: path
    required: true
  upstream_dir:
    description:
      - Live directory of the apps' upstream files (the stage's C(upstreams)), the one M(appfleet.docker.app_container) writes.
    type: path
    required: true
  tls_dir:
    description:
      - Live directory of the apps' certificates and private keys (the stage's C(tls)).
    type: path
    required: true
  absent:
    description:
      - Further live files to remove, for example Debian's C(/etc/nginx/sites-enabled/default).
    type: list
    elements: path
    default: []
  nginx_conf:
    description:
      - The main nginx configuration file; its directory is part of the copy that is tested.
    type: path
    default: /etc/nginx/nginx.conf
  nginx:
    description:
      - Path of the nginx binary. By default C(nginx) from the E(PATH) or C(/usr/sbin).
      - Where no nginx is found the module fails, but in check mode it reports no change
        (nginx not installed yet, nothing to test against) and says so in RV(msg).
    type: path
notes:
  - Runs as root on the managed host; installed files are owned by root with the mode of the candidate.
seealso:
  - module: appfleet.docker.app_container
"""

EXAMPLES = r"""
- name: Test the rendered configuration with nginx -t and put it in place
  appfleet.docker.nginx_apply:
    files:
      conf.d/appfleet.conf: "{{ lookup('ansible.builtin.file', 'appfleet.conf') }}"
      sites/web.conf: "{{ lookup('ansible.builtin.file', 'web.conf') }}"
    conf_dir: /etc/nginx/conf.d
    sites_dir: /etc/nginx/appfleet/sites
    upstream_dir: /etc/nginx/appfleet/upstreams
    tls_dir: /etc/nginx/appfleet/tls
  notify: Reload nginx

- name: Test the candidate configuration with nginx -t and put it in place
  appfleet.docker.nginx_apply:
    stage: /tmp/appfleet-nginx.x1y2/stage
    conf_dir: /etc/nginx/conf.d
    sites_dir: /etc/nginx/appfleet/sites
    upstream_dir: /etc/nginx/appfleet/upstreams
    tls_dir: /etc/nginx/appfleet/tls
    absent:
      - /etc/nginx/sites-enabled/default
  notify: Reload nginx
"""

RETURN = r"""
msg:
  description: Why nothing was tested, in check mode where nginx is not installed yet.
  returned: when nginx is not installed, in check mode
  type: str
  sample: nginx is not installed yet, so check mode cannot test the configuration here
changes:
  description: The files changed (in check mode, that would be changed), in plan order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The live file.
      type: str
    action:
      description: One of V(create), V(update), V(remove).
      type: str
  sample:
    - path: /etc/nginx/appfleet/sites/web.conf
      action: update
    - path: /etc/nginx/sites-enabled/default
      action: remove
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.appfleet.docker.plugins.module_utils._docker import AppfleetError
from ansible_collections.appfleet.docker.plugins.module_utils._nginx_apply import apply

NOT_INSTALLED = ("nginx is not installed on this host; apply the appfleet.docker.proxy role "
                 "(playbooks/hosts.yml) first")
NOT_INSTALLED_CHECK = ("nginx is not installed yet, so check mode cannot test the configuration here; "
                       "a real run installs it and tests the configuration before putting it in place")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stage=dict(type="path"),
            files=dict(type="dict"),
            private_keys=dict(type="dict", no_log=True),
            conf_dir=dict(type="path", required=True),
            sites_dir=dict(type="path", required=True),
            upstream_dir=dict(type="path", required=True),
            tls_dir=dict(type="path", required=True),
            absent=dict(type="list", elements="path", default=[]),
            nginx_conf=dict(type="path", default="/etc/nginx/nginx.conf"),
            nginx=dict(type="path"),
        ),
        supports_check_mode=True,
        required_one_of=[("stage", "files")],
        mutually_exclusive=[("stage", "files"), ("stage", "private_keys")],
    )
    params = dict(module.params)
    params["nginx"] = params["nginx"] or module.get_bin_path("nginx", opt_dirs=["/usr/sbin"])
    if params["nginx"] is None:
        if module.check_mode:
            # A check run before the one that installs nginx: nothing to test against yet.
            module.exit_json(changed=False, changes=[], msg=NOT_INSTALLED_CHECK)
        module.fail_json(msg=NOT_INSTALLED, changed=False)
    failure = None
    try:
        result = apply(params, module.check_mode, module._diff, module.run_command)
    except AppfleetError as exc:
        failure = exc.msg
    if failure is not None:
        # Outside the except block: fail_json adds no traceback to an expected failure.
        module.fail_json(msg=failure, changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
