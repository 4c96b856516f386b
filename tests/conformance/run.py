#!/usr/bin/env python3
"""Conformance test runner: starts the real runneld on 127.0.0.1 with ports
chosen at run time, drives ONE stock Kinesis client against it, stops it.

    run.py --client awscli-v2|awscli-v1|boto3|js|raw-http
           --runneld PATH --runnelctl PATH --work-dir DIR

For every client it starts three runneld processes (each its own data
directory under --work-dir):
  open      no credentials (the loopback default): the main scenario
  auth      kinesis_credentials set: SigV4 must verify (right key works,
            wrong secret / unknown key are refused)
  throttle  kinesis_throughput_limits=kinesis: PutRecords partial failures
It reads each one's stderr until "listening native=... http=...", runs the
client's scenario (kinesis_scenario.py, or raw_http.py) and then stops every
runneld by PID with SIGTERM and requires exit status 0 (a clean shutdown).

Exit status: 0 pass, 1 fail, 77 skip (CTest SKIP_RETURN_CODE) only when the
client is genuinely not on the machine: the pip `aws` v1. Debian's
/usr/bin/aws (v2), python3-boto3 and node/npm are installed by
tools/deps.sh, so their absence is a failure. The JS SDK is installed with
`npm ci` from js/package-lock.json into --work-dir (never the source tree).

Environment: RN_CONF_KEEP=1 keeps the data directories and logs.
Standard library only.
"""

import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
DEBIAN_PYTHON = "/usr/bin/python3"
DEBIAN_AWS = "/usr/bin/aws"
AUTH_CREDS = "AKIDCONFORMANCE:conformance/Secret+Key=="
LISTEN_RE = re.compile(r"listening native=(\S+) http=(\S+)")
START_TIMEOUT_S = 120   # bounds on waiting for a process, not synchronisation
STOP_TIMEOUT_S = 120
SCENARIO_TIMEOUT_S = 1500


def log(msg):
    print(f"[run.py] {msg}", flush=True)


class Runneld:
    """One runneld process; stderr goes to a log file through a reader
    thread that signals when the listening line appears."""

    def __init__(self, exe, workdir, name, extra_args):
        self.name = name
        self.data = os.path.join(workdir, name + "-data")
        self.logpath = os.path.join(workdir, name + ".log")
        os.makedirs(self.data, exist_ok=True)
        argv = [exe, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", self.data] + extra_args
        log(f"starting {name}: {' '.join(argv)}")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.native = self.http = None
        self.ready = threading.Event()
        self.logf = open(self.logpath, "wb")
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    def _pump(self):
        for line in self.p.stderr:
            self.logf.write(line)
            self.logf.flush()
            if not self.ready.is_set():
                m = LISTEN_RE.search(line.decode("utf-8", "replace"))
                if m:
                    self.native, self.http = m.group(1), m.group(2)
                    self.ready.set()
        self.ready.set()  # EOF: the process is gone

    def wait_ready(self):
        self.ready.wait(START_TIMEOUT_S)
        if not self.http:
            raise RuntimeError(f"runneld {self.name} did not report its ports (exit {self.p.poll()}); "
                               f"log:\n{self.tail()}")
        log(f"{self.name}: native={self.native} http={self.http} pid={self.p.pid}")

    def stop(self):
        """SIGTERM by PID; True when it exited 0 in time."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"{self.name}: no exit {STOP_TIMEOUT_S}s after SIGTERM; SIGKILL")
            self.p.kill()
            self.p.wait()
            rc = None
        self.t.join(30)
        self.logf.close()
        if rc != 0:
            log(f"{self.name}: exit status {rc}, want 0 (clean shutdown); log:\n{self.tail()}")
            return False
        log(f"{self.name}: stopped cleanly (exit 0)")
        return True

    def tail(self, n=60):
        try:
            with open(self.logpath, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


def aws_major(path):
    try:
        p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, AWS_PAGER=""))
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"aws-cli/(\d+)\.", (p.stdout + p.stderr).strip())
    return int(m.group(1)) if m else None


def find_aws_v1():
    seen = set()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        c = os.path.join(d or ".", "aws")
        if not (os.path.isfile(c) and os.access(c, os.X_OK)):
            continue
        real = os.path.realpath(c)
        if real in seen:
            continue
        seen.add(real)
        if aws_major(c) == 1:
            return c
    return None


def setup_js(workdir):
    """npm ci the pinned SDK into workdir/js (once per lockfile content)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise RuntimeError("node/npm not found: tools/deps.sh installs them (nodejs npm)")
    v = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.match(r"v(\d+)\.", v)
    if m and int(m.group(1)) < 20:
        log(f"note: node {v}; the pinned @aws-sdk/client-kinesis declares node >= 20")
    jsdir = os.path.join(workdir, "js")
    os.makedirs(jsdir, exist_ok=True)
    for f in ("package.json", "package-lock.json", "adapter.cjs"):
        shutil.copyfile(os.path.join(HERE, "js", f), os.path.join(jsdir, f))
    with open(os.path.join(HERE, "js", "package-lock.json"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(jsdir, ".installed-lock-sha256")
    have = open(stamp).read().strip() if os.path.exists(stamp) else ""
    if have != want or not os.path.isdir(os.path.join(jsdir, "node_modules", "@aws-sdk", "client-kinesis")):
        log(f"npm ci in {jsdir}")
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=jsdir, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"npm ci failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        with open(stamp, "w") as f:
            f.write(want + "\n")
    return node, jsdir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", required=True, choices=["awscli-v2", "awscli-v1", "boto3", "js", "raw-http"])
    ap.add_argument("--runneld", required=True)
    ap.add_argument("--runnelctl", required=True)
    ap.add_argument("--work-dir", required=True)
    a = ap.parse_args()

    os.makedirs(a.work_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"{a.client}-", dir=a.work_dir)
    cfg = os.path.join(work, "aws-config")
    cred = os.path.join(work, "aws-credentials")
    for f in (cfg, cred):  # keep ~/.aws out of it
        open(f, "w").close()
    os.environ.update({"AWS_CONFIG_FILE": cfg, "AWS_SHARED_CREDENTIALS_FILE": cred,
                       "AWS_ACCESS_KEY_ID": "conformance", "AWS_SECRET_ACCESS_KEY": "conformance-secret",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_PAGER": "",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    for v in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        os.environ.pop(v, None)

    # -- is the client here? ------------------------------------------------
    py = DEBIAN_PYTHON
    cmd_extra = []
    try:
        if a.client == "awscli-v2":
            if aws_major(DEBIAN_AWS) != 2:
                raise RuntimeError(f"{DEBIAN_AWS} is not the AWS CLI v2: install Debian's awscli (tools/deps.sh)")
            cmd_extra = ["--aws", DEBIAN_AWS]
        elif a.client == "awscli-v1":
            v1 = find_aws_v1()
            if not v1:
                log("SKIP: no AWS CLI v1 (`aws` from pip) on PATH")
                return SKIP
            cmd_extra = ["--aws", v1]
        elif a.client == "boto3":
            p = subprocess.run([py, "-c", "import boto3, sys; sys.stdout.write(boto3.__file__)"],
                               capture_output=True, text=True)
            if p.returncode != 0 or not p.stdout.startswith("/usr/lib/python3/dist-packages/"):
                raise RuntimeError(f"Debian's python3-boto3 is not importable by {py} ({p.stdout}{p.stderr}): "
                                   "install python3-boto3 (tools/deps.sh)")
        elif a.client == "js":
            node, jsdir = setup_js(a.work_dir)
            cmd_extra = ["--node", node, "--js-dir", jsdir]
        if a.client != "raw-http" and not os.access(py, os.X_OK):
            raise RuntimeError(f"{py} missing: install python3 (tools/deps.sh)")
    except RuntimeError as e:
        log(f"FAIL: {e}")
        return 1

    # -- one pass per transport ---------------------------------------------
    # Cleartext for every client; then, for boto3 (urllib3, HTTP/1.1) and the
    # JS SDK (ALPN h2), the whole scenario again over TLS with a CA made for
    # this run (AWS_CA_BUNDLE / NODE_EXTRA_CA_CERTS trust it). The CLIs share
    # boto3's HTTP stack and take minutes per pass, so they run cleartext only.
    passes = ["cleartext"] + (["tls"] if a.client in ("boto3", "js") else [])
    rc = 0
    for mode in passes:
        r = run_pass(a, work, mode, py, cmd_extra)
        log(f"{mode} pass: {'ok' if r == 0 else 'FAILED'}")
        rc = rc or r
    if rc == 0 and not os.environ.get("RN_CONF_KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"logs and data kept in {work}")
    return rc


def make_tls(work):
    """A CA and a server certificate for 127.0.0.1/localhost (openssl CLI).
    Returns (ca.pem, server.pem, server.key)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("the openssl program is missing (Debian package openssl)")
    d = os.path.join(work, "tls")
    os.makedirs(d, exist_ok=True)
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    crt, key, csr = os.path.join(d, "server.pem"), os.path.join(d, "server.key"), os.path.join(d, "server.csr")
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in ([openssl, "req", "-x509"] + ec + ["-keyout", cakey, "-out", ca, "-days", "2",
                  "-subj", "/CN=runnel conformance CA", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                 [openssl, "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                 [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial",
                  "-out", crt, "-days", "2", "-extfile", ext]):
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {p.stderr}")
    return ca, crt, key


def run_pass(a, work, mode, py, cmd_extra):
    servers = {}
    ok = True
    rc = 1
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ in the source tree
    try:
        tls_args, scheme = [], "http"
        if mode == "tls":
            ca, crt, key = make_tls(work)
            tls_args = ["--set", f"http_tls_cert={crt}", "--set", f"http_tls_key={key}"]
            scheme = "https"
            env.update({"AWS_CA_BUNDLE": ca, "NODE_EXTRA_CA_CERTS": ca})
        sub = os.path.join(work, mode)
        os.makedirs(sub, exist_ok=True)
        servers["open"] = Runneld(a.runneld, sub, "open", tls_args)
        servers["auth"] = Runneld(a.runneld, sub, "auth", tls_args + ["--set", f"kinesis_credentials={AUTH_CREDS}"])
        if a.client != "raw-http":
            servers["throttle"] = Runneld(a.runneld, sub, "throttle",
                                          tls_args + ["--set", "kinesis_throughput_limits=kinesis"])
        for s in servers.values():
            s.wait_ready()
        ep = {k: f"{scheme}://{s.http}" for k, s in servers.items()}
        if a.client == "raw-http":
            argv = [sys.executable, os.path.join(HERE, "raw_http.py"), "--endpoint", ep["open"],
                    "--auth-endpoint", ep["auth"], "--auth-creds", AUTH_CREDS]
        else:
            argv = [py, os.path.join(HERE, "kinesis_scenario.py"), "--client", a.client, "--endpoint", ep["open"],
                    "--auth-endpoint", ep["auth"], "--auth-creds", AUTH_CREDS,
                    "--partial-failure", ep["throttle"],
                    "--runnelctl", a.runnelctl, "--native", servers["open"].native,
                    "--transport", mode] + cmd_extra
        log(f"{mode} pass: running " + " ".join(argv))
        try:
            rc = subprocess.run(argv, timeout=SCENARIO_TIMEOUT_S, env=env).returncode
        except subprocess.TimeoutExpired:
            log(f"FAIL: scenario still running after {SCENARIO_TIMEOUT_S}s")
            rc = 1
    except RuntimeError as e:
        log(f"FAIL: {e}")
        rc = 1
    finally:
        for s in servers.values():
            ok = s.stop() and ok
    return rc if ok else 1


if __name__ == "__main__":
    sys.exit(main())
