"""Observable state of a host after appfleet.docker.proxy (apps web and api, api with TLS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

UPSTREAMS = "/etc/nginx/appfleet/upstreams"
SITES = "/etc/nginx/appfleet/sites"
TLS = "/etc/nginx/appfleet/tls"
APP_PORT = 18080
APP_UNIT = "afd-proxy-test-app"
APP_DIR = "/srv/afd-proxy-test-app"
APP_BODY = "afd-proxy-test-app says hello"


def status(host, url, *extra):
    """HTTP status code of a request made inside the VM (curl; 000 when nothing answered)."""
    cmd = "curl -sS -o /dev/null -w '%%{http_code}' --max-time 10 %s '%s'" % (" ".join(extra), url)
    return host.run(cmd).stdout.strip()


def body(host, url, *extra):
    res = host.run("curl -sS --max-time 10 %s '%s'" % (" ".join(extra), url))
    assert res.rc == 0, res.stderr
    return res.stdout


def converge_again(host):
    """Run the scenario's converge playbook on this instance; return its output."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
         "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", host.backend.get_hostname(),
         os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")],
        capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def test_nginx_installed_running_enabled(host):
    assert host.package("nginx").is_installed
    nginx = host.service("nginx")
    assert nginx.is_running and nginx.is_enabled


def test_nginx_configuration_is_valid(host):
    res = host.run("nginx -t")
    assert res.rc == 0, res.stderr
    assert "test is successful" in res.stderr


def test_appfleet_conf_includes_upstreams_and_sites(host):
    conf = host.file("/etc/nginx/conf.d/appfleet.conf")
    assert conf.user == "root" and conf.mode == 0o644
    text = conf.content_string
    assert "include %s/*.conf;" % UPSTREAMS in text
    assert "include %s/*.conf;" % SITES in text
    # Upstreams are included before the sites that use them.
    assert text.index(UPSTREAMS) < text.index(SITES)


def test_one_server_block_per_proxied_app(host):
    assert sorted(host.file(SITES).listdir()) == ["api.conf", "web.conf"]
    web = host.file(SITES + "/web.conf").content_string
    api = host.file(SITES + "/api.conf").content_string
    assert web.count("server {") == 1 and "server_name web.test;" in web
    assert "proxy_pass http://appfleet_web;" in web and "ssl" not in web
    # api: plain HTTP and HTTPS.
    assert api.count("server {") == 2 and api.count("server_name api.test;") == 2
    assert "listen 443 ssl;" in api and "ssl_certificate_key %s/api.key;" % TLS in api
    # The loaded configuration has exactly these server names (plus the default server's "_").
    dump = host.check_output("nginx -T 2>/dev/null")
    names = sorted({line.strip() for line in dump.splitlines() if line.strip().startswith("server_name ")})
    assert names == ["server_name _;", "server_name api.test;", "server_name web.test;"]


def test_placeholder_upstream_per_proxied_app(host):
    assert sorted(host.file(UPSTREAMS).listdir()) == ["api.conf", "web.conf"]
    for app in ("web", "api"):
        text = host.file("%s/%s.conf" % (UPSTREAMS, app)).content_string
        assert "upstream appfleet_%s { server 127.0.0.1:9; }" % app in text


def test_debian_default_site_removed(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_tls_material_modes(host):
    key = host.file(TLS + "/api.key")
    assert key.exists and key.user == "root" and key.group == "root" and key.mode == 0o600
    assert "PRIVATE KEY" in host.check_output("cat %s/api.key | head -1" % TLS)
    cert = host.file(TLS + "/api.crt")
    assert cert.mode == 0o644
    assert host.file(TLS).mode == 0o750
    assert not host.file(TLS + "/web.key").exists


def test_unknown_host_gets_404(host):
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: unknown.test'") == "404"
    assert status(host, "http://127.0.0.1:80/") == "404"


def test_app_not_deployed_gets_502(host):
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == "502"


def test_https_serves_the_app_certificate(host):
    res = host.run("curl -skv -o /dev/null -w '%{http_code}' --max-time 10 "
                   "--resolve api.test:443:127.0.0.1 https://api.test/")
    # nginx answered over TLS (502: the api app is not deployed) with the given certificate.
    assert res.stdout.strip() == "502", res.stderr
    assert "subject: CN=api.test" in res.stderr and "SSL connection using TLSv1." in res.stderr, res.stderr


@pytest.fixture(name="test_app")
def fixture_test_app(host):
    """A small HTTP server on 127.0.0.1:APP_PORT inside the VM, stopped afterwards (at most 10 min)."""
    host.run("systemctl stop %s" % APP_UNIT)
    host.run("systemctl reset-failed %s" % APP_UNIT)
    host.check_output("mkdir -p %s && printf '%%s' '%s' > %s/index.html" % (APP_DIR, APP_BODY, APP_DIR))
    host.check_output("systemd-run --unit %s --property RuntimeMaxSec=600 "
                      "python3 -m http.server %d --bind 127.0.0.1 --directory %s"
                      % (APP_UNIT, APP_PORT, APP_DIR))
    for _attempt in range(30):
        if status(host, "http://127.0.0.1:%d/" % APP_PORT) == "200":
            break
        time.sleep(1)
    else:
        pytest.fail("the test HTTP server did not answer on 127.0.0.1:%d inside the VM" % APP_PORT)
    yield APP_PORT
    host.run("systemctl stop %s" % APP_UNIT)


def test_deployed_upstream_serves_and_survives_a_converge(host, test_app):
    upstream = "%s/web.conf" % UPSTREAMS
    # What app_container does: point the upstream at the serving container and reload.
    host.check_output("printf 'upstream appfleet_web { server 127.0.0.1:%d; }\\n' > %s" % (test_app, upstream))
    host.check_output("nginx -t 2>&1 && systemctl reload nginx")
    written = host.file(upstream).content_string
    served = ""
    for _attempt in range(10):
        if status(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == "200":
            served = body(host, "http://127.0.0.1:80/", "-H 'Host: web.test'")
            break
        time.sleep(1)
    assert served == APP_BODY
    # Another app is unaffected: still the placeholder.
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: api.test'") == "502"

    # A re-converge keeps the deployed upstream (placeholders use force: false).
    recap = converge_again(host)
    assert host.file(upstream).content_string == written
    assert "changed=0" in recap.split("PLAY RECAP", 1)[1], recap[-3000:]
    assert body(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == APP_BODY


def test_reconverge_restores_a_removed_site_and_default_site(host):
    """Drift is repaired: a deleted server block and a re-enabled default site."""
    host.check_output("rm -f %s/api.conf && ln -sf /etc/nginx/sites-available/default "
                      "/etc/nginx/sites-enabled/default" % SITES)
    recap = converge_again(host)
    assert "RUNNING HANDLER [appfleet.docker.proxy : Reload nginx gracefully]" in recap
    assert host.file(SITES + "/api.conf").exists
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: unknown.test'") == "404"
    assert status(host, "https://api.test/", "-k", "--resolve api.test:443:127.0.0.1") == "502"
    assert sorted(host.file(SITES).listdir()) == ["api.conf", "web.conf"]
