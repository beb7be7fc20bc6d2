"""Observable state of a host after appfleet.docker.proxy.

Apps (converge.yml): web (plain HTTP), api (TLS, redirect and HSTS), docs
(TLS with redirect and HSTS turned off), worker (no proxy settings).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time

import pytest

UPSTREAMS = "/etc/nginx/appfleet/upstreams"
SITES = "/etc/nginx/appfleet/sites"
TLS = "/etc/nginx/appfleet/tls"
APP_PORT = 18080
APP_UNIT = "afd-proxy-test-app"
APP_SCRIPT = "/usr/local/lib/afd-proxy-test-app.py"
APP_BODY = "afd-proxy-test-app says hello"

# The stand-in app: HTTP/1.1 with keep-alive; GET /headers answers with the
# request headers it received; a WebSocket upgrade gets 101 (saying which
# Connection header arrived) and then every chunk back as "echo:<chunk>".
APP_SOURCE = r'''
import socketserver, sys

BODY = sys.argv[2].encode()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            request = self.rfile.readline()
            if not request.strip():
                return
            headers = []
            while True:
                line = self.rfile.readline().decode("latin-1").rstrip("\r\n")
                if not line:
                    break
                headers.append(line)
            seen = {h.split(":", 1)[0].strip().lower(): h.split(":", 1)[1].strip() for h in headers if ":" in h}
            if seen.get("upgrade", "").lower() == "websocket":
                self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "X-Seen-Connection: %s\r\n\r\n" % seen.get("connection", "")).encode())
                self.wfile.flush()
                while True:
                    data = self.request.recv(4096)
                    if not data:
                        return
                    self.request.sendall(b"echo:" + data)
            body = ("\n".join(headers) + "\n").encode() if request.split()[1] == b"/headers" else BODY
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
            self.wfile.flush()


socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''

# A WebSocket client: upgrade through nginx, send "ping", print the response head and what came back.
WS_CLIENT = r'''
import socket, sys

sock = socket.create_connection(("127.0.0.1", 80), timeout=10)
sock.sendall(b"GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
head, _sep, rest = data.partition(b"\r\n\r\n")
print(head.decode("latin-1"))
print("--")
if head.startswith(b"HTTP/1.1 101"):
    sock.sendall(b"ping")
    while len(rest) < len(b"echo:ping"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
print(rest.decode("latin-1"))
'''


def status(host, url, *extra):
    """HTTP status code of a request made inside the VM (curl; 000 when nothing answered)."""
    cmd = "curl -sS -o /dev/null -w '%%{http_code}' --max-time 10 %s '%s'" % (" ".join(extra), url)
    return host.run(cmd).stdout.strip()


def body(host, url, *extra):
    res = host.run("curl -sS --max-time 10 %s '%s'" % (" ".join(extra), url))
    assert res.rc == 0, res.stderr
    return res.stdout


def headers(host, url, *extra):
    """Response headers (lower-case names) of a request made inside the VM."""
    res = host.run("curl -sS -D - -o /dev/null --max-time 10 %s '%s'" % (" ".join(extra), url))
    assert res.rc == 0, res.stderr
    return {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
            for line in res.stdout.splitlines()[1:] if ":" in line}


def run_python(host, source, *args):
    encoded = base64.b64encode(source.encode()).decode()
    return host.run("echo %s | base64 -d > /tmp/afd-proxy-snippet.py && python3 /tmp/afd-proxy-snippet.py %s"
                    % (encoded, " ".join(args)))


def converge(host, extra_vars=None):
    """Run the scenario's converge playbook on this instance (with -e extra_vars); return (rc, output)."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
           "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", host.backend.get_hostname(),
           os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def converge_again(host):
    rc, out = converge(host)
    assert rc == 0, out[-3000:]
    return out


def recap(out):
    """(changed, failed) of the run's PLAY RECAP."""
    match = re.search(r"PLAY RECAP.*?: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", out, re.S)
    assert match, out[-3000:]
    return int(match.group(1)), int(match.group(2))


def nginx_files(host):
    """Every file and link under /etc/nginx: type, mode, owner, link target and content hash."""
    return host.check_output(
        "cd /etc/nginx && find . -printf '%y %m %u %p -> %l\\n' | sort "
        "&& find . -type f -print0 | sort -z | xargs -0 sha256sum")


def wait_for_status(host, expected, url, *extra):
    """Retry a request until it gives `expected` (nginx or the app may still be starting); return the last code."""
    code = ""
    for _attempt in range(30):
        code = status(host, url, *extra)
        if code == expected:
            break
        time.sleep(1)
    return code


def test_nginx_installed_running_enabled(host):
    assert host.package("nginx").is_installed
    nginx = host.service("nginx")
    assert nginx.is_running and nginx.is_enabled


def test_nginx_configuration_is_valid(host):
    res = host.run("nginx -t")
    assert res.rc == 0, res.stderr
    assert "test is successful" in res.stderr


def test_no_candidates_left_behind(host):
    assert host.run("ls -d /tmp/appfleet-nginx.* /tmp/appfleet-nginx-candidate.* 2>/dev/null").stdout == ""
    # nginx_apply's temporary files beside the live ones (atomic renames).
    assert host.run("find /etc/nginx -name '.*.tmp'").stdout == ""


def test_appfleet_conf_includes_upstreams_and_sites(host):
    conf = host.file("/etc/nginx/conf.d/appfleet.conf")
    assert conf.user == "root" and conf.mode == 0o644
    text = conf.content_string
    assert "include %s/*.conf;" % UPSTREAMS in text
    assert "include %s/*.conf;" % SITES in text
    # Upstreams are included before the sites that use them.
    assert text.index(UPSTREAMS) < text.index(SITES)
    # WebSocket: "upgrade" only for requests that ask for it, else no Connection header.
    assert re.search(r"map \$http_upgrade \$appfleet_connection_upgrade \{\s*default upgrade;\s*''\s+'';\s*\}", text)


def test_one_server_block_per_proxied_app(host):
    assert sorted(host.file(SITES).listdir()) == ["api.conf", "docs.conf", "web.conf"]
    web = host.file(SITES + "/web.conf").content_string
    api = host.file(SITES + "/api.conf").content_string
    docs = host.file(SITES + "/docs.conf").content_string
    assert web.count("server {") == 1 and "server_name web.test;" in web
    # The active slot: appfleet_web.b while the flag file exists (module_utils/_proxy.py).
    assert "set $appfleet_upstream appfleet_web;" in web
    assert "if (-f %s/web.slot-b) {" % UPSTREAMS in web and "set $appfleet_upstream appfleet_web.b;" in web
    assert "proxy_pass http://$appfleet_upstream;" in web and "ssl" not in web
    assert "proxy_read_timeout 120s;" in web  # proxy.read_timeout of web
    # api and docs: plain HTTP and HTTPS.
    assert api.count("server {") == 2 and api.count("server_name api.test;") == 2
    assert "listen 443 ssl;" in api and "ssl_certificate_key %s/api.key;" % TLS in api
    assert docs.count("server {") == 2 and docs.count("server_name docs.test www.docs.test;") == 2
    # The loaded configuration has exactly these server names (plus the default servers' "_").
    dump = host.check_output("nginx -T 2>/dev/null")
    names = sorted({line.strip() for line in dump.splitlines() if line.strip().startswith("server_name ")})
    assert names == ["server_name _;", "server_name api.test;", "server_name docs.test www.docs.test;",
                     "server_name web.test;"]


def test_websocket_headers_in_every_proxied_location(host):
    dump = host.check_output("nginx -T 2>/dev/null")
    passes = dump.count("proxy_pass http://$appfleet_upstream;")
    assert passes == 4  # web; api over HTTPS (HTTP redirects); docs over HTTP and HTTPS
    assert dump.count("proxy_set_header Upgrade $http_upgrade;") == passes
    assert dump.count("proxy_set_header Connection $appfleet_connection_upgrade;") == passes
    assert 'proxy_set_header Connection "";' not in dump


def test_every_server_listens_on_ipv4_and_ipv6(host):
    dump = host.check_output("nginx -T 2>/dev/null")
    listens = [line.strip() for line in dump.splitlines() if line.strip().startswith("listen ")]
    ipv4 = sorted(line for line in listens if "[::]" not in line)
    ipv6 = sorted(line.replace("[::]:", "") for line in listens if "[::]" in line)
    assert ipv4 and ipv4 == ipv6, listens
    sockets = host.check_output("ss -Hltn | awk '{print $4}'").split()
    for port in ("80", "443"):
        assert "0.0.0.0:%s" % port in sockets and "[::]:%s" % port in sockets, sockets
    # Over IPv6 (prepare.yml turned it on for the loopback): the app's server answers (502: not deployed).
    assert status(host, "http://[::1]:80/", "-g", "-H 'Host: docs.test'") == "502"
    assert status(host, "https://api.test/", "-k", "--resolve 'api.test:443:[::1]'") == "502"
    assert status(host, "http://[::1]:80/", "-g", "-H 'Host: unknown.test'") == "404"


def test_placeholder_upstream_per_proxied_app(host):
    assert sorted(host.file(UPSTREAMS).listdir()) == ["api.conf", "docs.conf", "web.conf"]
    for app in ("web", "api", "docs"):
        text = host.file("%s/%s.conf" % (UPSTREAMS, app)).content_string
        assert "upstream appfleet_%s { server 127.0.0.1:9; }" % app in text
        assert "upstream appfleet_%s.b { server 127.0.0.1:9; }" % app in text


def test_debian_default_site_removed(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_tls_material_modes(host):
    for app in ("api", "docs"):
        key = host.file("%s/%s.key" % (TLS, app))
        assert key.exists and key.user == "root" and key.group == "root" and key.mode == 0o600
        assert "PRIVATE KEY" in host.check_output("head -1 %s/%s.key" % (TLS, app))
        assert host.file("%s/%s.crt" % (TLS, app)).mode == 0o644
    assert host.file(TLS).mode == 0o750
    assert sorted(host.file(TLS).listdir()) == ["api.crt", "api.key", "docs.crt", "docs.key"]


def test_unknown_host_gets_404(host):
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: unknown.test'") == "404"
    assert status(host, "http://127.0.0.1:80/") == "404"


def test_app_not_deployed_gets_502(host):
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == "502"
    # docs opted out of the redirect: plain HTTP reaches the app.
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: docs.test'") == "502"


def test_https_serves_the_app_certificate(host):
    for name in ("api.test", "www.docs.test"):
        res = host.run("curl -skv -o /dev/null -w '%%{http_code}' --max-time 10 "
                       "--resolve %s:443:127.0.0.1 https://%s/" % (name, name))
        # nginx answered over TLS (502: the app is not deployed) with the app's certificate.
        assert res.stdout.strip() == "502", res.stderr
        cn = name.replace("www.", "")
        assert "subject: CN=%s" % cn in res.stderr and "SSL connection using TLSv1." in res.stderr, res.stderr


def test_http_redirects_to_https_with_hsts(host):
    res = host.run("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 10 "
                   "-H 'Host: api.test' 'http://127.0.0.1:80/some/path?q=1'")
    assert res.stdout.strip() == "301 https://api.test/some/path?q=1", res.stdout + res.stderr
    # HSTS on every HTTPS answer, errors included, with api's proxy.hsts_max_age.
    assert headers(host, "https://api.test/", "-k", "--resolve api.test:443:127.0.0.1").get(
        "strict-transport-security") == "max-age=600"
    # Not over plain HTTP, and not for docs (proxy.hsts: false).
    assert "strict-transport-security" not in headers(host, "http://127.0.0.1:80/", "-H 'Host: docs.test'")
    assert "strict-transport-security" not in headers(host, "https://docs.test/", "-k",
                                                      "--resolve docs.test:443:127.0.0.1")


def test_unknown_sni_gets_no_certificate(host):
    # curl: exit 35 (TLS handshake failed); nginx answered the ClientHello with an alert.
    res = host.run("curl -skv -o /dev/null --max-time 10 --resolve unknown.test:443:127.0.0.1 https://unknown.test/")
    assert res.rc == 35, res.stderr
    assert "unrecognized name" in res.stderr and "subject:" not in res.stderr, res.stderr
    # Without SNI (an IP address) as well; openssl shows that no certificate was sent.
    res = host.run("curl -skv -o /dev/null --max-time 10 https://127.0.0.1:443/")
    assert res.rc == 35 and "subject:" not in res.stderr, res.stderr
    res = host.run("openssl s_client -connect 127.0.0.1:443 -servername unknown.test </dev/null 2>&1")
    assert "no peer certificate available" in res.stdout and "BEGIN CERTIFICATE" not in res.stdout, res.stdout
    # A known name still gets its certificate.
    res = host.run("openssl s_client -connect 127.0.0.1:443 -servername api.test </dev/null 2>&1")
    assert "BEGIN CERTIFICATE" in res.stdout and re.search(r"subject=\s*CN\s*=\s*api\.test", res.stdout), res.stdout


@pytest.fixture(name="test_app", scope="module")
def fixture_test_app(host):
    """The stand-in app on 127.0.0.1:APP_PORT inside the VM, stopped afterwards (at most 20 min)."""
    host.run("systemctl stop %s" % APP_UNIT)
    host.run("systemctl reset-failed %s" % APP_UNIT)
    host.check_output("echo %s | base64 -d > %s" % (base64.b64encode(APP_SOURCE.encode()).decode(), APP_SCRIPT))
    host.check_output("systemd-run --unit %s --property RuntimeMaxSec=1200 python3 %s %d '%s'"
                      % (APP_UNIT, APP_SCRIPT, APP_PORT, APP_BODY))
    if wait_for_status(host, "200", "http://127.0.0.1:%d/" % APP_PORT) != "200":
        pytest.fail("the test app did not answer on 127.0.0.1:%d inside the VM" % APP_PORT)
    yield APP_PORT
    host.run("systemctl stop %s" % APP_UNIT)


@pytest.fixture(name="web_deployed")
def fixture_web_deployed(host, test_app):
    """What app_container of an earlier version did: a one-server upstream at the serving app.

    The server block reads it through slot a (no flag file), so an upgrade keeps serving.
    """
    upstream = "%s/web.conf" % UPSTREAMS
    host.check_output("printf 'upstream appfleet_web { server 127.0.0.1:%d; }\\n' > %s" % (test_app, upstream))
    old_workers = set(nginx_workers(host))
    host.check_output("nginx -t 2>&1 && systemctl reload nginx")
    # Until the workers of the previous configuration have exited, one of them may still take a
    # new connection and answer with the placeholder (502): wait for them (bounded) first.
    deadline = time.monotonic() + 30
    while old_workers & set(nginx_workers(host)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not old_workers & set(nginx_workers(host)), "nginx's old workers still run 30 s after the reload"
    assert wait_for_status(host, "200", "http://127.0.0.1:80/", "-H 'Host: web.test'") == "200"
    return upstream


def nginx_workers(host):
    """The pids of nginx's worker processes (a reload starts new ones; the old ones exit)."""
    return host.check_output("pgrep -P \"$(cat /run/nginx.pid)\" || true").split()


def test_deployed_upstream_serves_and_survives_a_converge(host, web_deployed):
    written = host.file(web_deployed).content_string
    assert body(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == APP_BODY
    # Another app is unaffected: still the placeholder.
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: docs.test'") == "502"

    # A re-converge keeps the deployed upstream (app_container's file is never replaced).
    out = converge_again(host)
    assert host.file(web_deployed).content_string == written
    assert recap(out) == (0, 0), out[-3000:]
    assert body(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == APP_BODY


def test_websocket_upgrade_passes_and_plain_requests_keep_alive(host, web_deployed):
    # A plain request reaches the app with neither Upgrade nor Connection header (upstream keep-alive).
    seen = body(host, "http://127.0.0.1:80/headers", "-H 'Host: web.test'").lower().splitlines()
    assert "host: web.test" in seen, seen
    assert not [line for line in seen if line.startswith(("connection:", "upgrade:"))], seen
    # An upgrade reaches it with "Connection: upgrade", and the tunnel carries data both ways.
    res = run_python(host, WS_CLIENT)
    assert res.rc == 0, res.stderr
    head, _sep, echoed = res.stdout.partition("\n--\n")
    assert head.startswith("HTTP/1.1 101 Switching Protocols"), res.stdout
    assert "X-Seen-Connection: upgrade" in head, res.stdout
    assert echoed.strip() == "echo:ping", res.stdout


BAD_NGINX_VALUES = {
    # Passes the role's check (an nginx time), but nginx wants the units largest first.
    "read timeout nginx refuses": ({"converge_web_proxy": {"read_timeout": "10s1m"}},
                                   ["app web, option proxy.read_timeout", "proxy_read_timeout 10s1m",
                                    "invalid value"]),
    # A key that belongs to no certificate: only nginx can tell.
    "key that does not match the certificate": (
        {"converge_api_key": os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""), "tls", "other.key")},
        ["app api, proxy.tls.key", "key values mismatch"]),
}


@pytest.mark.parametrize("case", sorted(BAD_NGINX_VALUES))
def test_bad_nginx_value_keeps_the_old_config_serving(host, web_deployed, case):
    """Reliability 32: a value nginx refuses never lands; the old config keeps serving, also after a restart."""
    extra_vars, needles = BAD_NGINX_VALUES[case]
    before = nginx_files(host)
    rc, out = converge(host, extra_vars)
    flat = re.sub(r"\s+", " ", out)
    assert rc != 0, out[-3000:]
    assert "nginx -t refused the new configuration, so it was not put in place" in flat, out[-3000:]
    for needle in needles:
        assert needle in flat, (needle, out[-3000:])
    # The module's own failure (no separate assert task); with molecule's settings
    # "fatal:" goes to stderr, after the task headers that follow it.
    assert "TASK [appfleet.docker.proxy : Test the nginx configuration with nginx -t and put it in place]" in out
    assert recap(out) == (0, 1), out[-3000:]
    assert nginx_files(host) == before
    assert host.run("ls -d /tmp/appfleet-nginx.* /tmp/appfleet-nginx-candidate.* 2>/dev/null").stdout == ""
    assert host.run("nginx -t").rc == 0
    assert body(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == APP_BODY
    # nginx starting afresh (as at boot) reads the same, working files.
    host.check_output("systemctl restart nginx")
    assert wait_for_status(host, "200", "http://127.0.0.1:80/", "-H 'Host: web.test'") == "200"
    assert body(host, "http://127.0.0.1:80/", "-H 'Host: web.test'") == APP_BODY


BAD_INPUT = {
    "duplicate server name": ({"converge_extra_apps": [{"name": "blog", "proxy": {"server_name": "WEB.test"}}]},
                              ["(blog): apps web and blog both claim server_name web.test (port 80)"]),
    "server name with a trailing newline": ({"converge_web_proxy": {"server_name": "web.test\n"}},
                                            ["(web): proxy.server_name must be host names", "web.test"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_refused_before_anything_changes(host, case):
    extra_vars, needles = BAD_INPUT[case]
    before = nginx_files(host)
    rc, out = converge(host, extra_vars)
    flat = re.sub(r"\s+", " ", out)
    assert rc != 0, out[-3000:]
    for needle in needles:
        assert needle in flat, (needle, out[-3000:])
    failed_task = re.findall(r"TASK \[([^\]]+)\]", out.split("fatal:")[0])[-1]
    assert failed_task == "appfleet.docker.proxy : Check the proxy settings", failed_task
    assert recap(out) == (0, 1), out[-3000:]
    assert nginx_files(host) == before


def test_reconverge_restores_a_removed_site_and_default_site(host):
    """Drift is repaired: a deleted server block and a re-enabled default site."""
    host.check_output("rm -f %s/api.conf && ln -sf /etc/nginx/sites-available/default "
                      "/etc/nginx/sites-enabled/default" % SITES)
    out = converge_again(host)
    assert "RUNNING HANDLER [appfleet.docker.proxy : Reload nginx gracefully]" in out
    assert host.file(SITES + "/api.conf").exists
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert status(host, "http://127.0.0.1:80/", "-H 'Host: unknown.test'") == "404"
    assert status(host, "https://api.test/", "-k", "--resolve api.test:443:127.0.0.1") == "502"
    assert sorted(host.file(SITES).listdir()) == ["api.conf", "docs.conf", "web.conf"]
