"""Stock Kinesis clients behind one small interface, for kinesis_scenario.py.

Each adapter exposes

    call(op, params, creds=None) -> dict    the operation's output
    raises KinesisError(code, message)      when the service answered an error

with the operation's API name ("PutRecords") and the API's own parameter
names and shapes ({"StreamName": ..., "Records": [{"Data": ..., ...}]}). In
params, blobs are bytes (or str, sent as UTF-8) and timestamps are epoch
seconds (float). In outputs, blobs come back as bytes and timestamps as epoch
seconds (float), whatever the client printed or returned.

The adapters drive the clients the way users do:
  * Boto3Client  - boto3 in this process (the runner starts this file's
                   scenario under Debian's /usr/bin/python3, so this is
                   Debian's python3-boto3), endpoint_url=...
  * CliClient    - the `aws` program (v2 from Debian, or a pip v1), one process
                   per call, with ordinary flags (--stream-name ...), fileb://
                   for binary data, and --cli-input-json file:// for large
                   batches (a command line cannot carry a 1 MiB argument)
  * JsClient     - @aws-sdk/client-kinesis with its default (HTTP/2) handler,
                   through js/adapter.cjs
Retries are off in every client (one attempt), so an error the server sends is
seen as it was sent rather than hidden by a retry.
"""

import base64
import datetime
import json
import os
import re
import subprocess
import tempfile


class KinesisError(Exception):
    def __init__(self, code, message, status=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ClientFailure(Exception):
    """The client itself failed (not an error answer from the service)."""


def _strip_type(code):
    # "com.amazon.coral.service#SerializationException" -> "SerializationException"
    return code.rsplit("#", 1)[-1] if code else code


def _to_epoch(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.timestamp()
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            s = v.replace("Z", "+00:00")
            return datetime.datetime.fromisoformat(s).timestamp()
    return v


def _normalize(obj, key=None):
    """Timestamps -> epoch float, everything else as is (recursively)."""
    if isinstance(obj, dict):
        return {k: _normalize(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_normalize(v, key) for v in obj]
    if key and key.endswith("Timestamp"):
        return _to_epoch(obj)
    return obj


# ---------------------------------------------------------------------------
class Boto3Client:
    name = "boto3"
    ts_resolution_ms = 1000  # botocore sends Timestamp as whole epoch seconds

    def __init__(self, endpoint, region, creds):
        import boto3
        import botocore
        from botocore.config import Config

        self._boto3 = boto3
        self._endpoint = endpoint
        self._region = region
        self._default_creds = creds
        self.default_creds = creds
        self._cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                           connect_timeout=30, read_timeout=120)
        self._clients = {}
        self.version = f"boto3 {boto3.__version__} botocore {botocore.__version__} ({boto3.__file__})"

    def _client(self, creds):
        creds = creds or self._default_creds
        c = self._clients.get(creds)
        if c is None:
            s = self._boto3.session.Session(aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                                            region_name=self._region)
            c = s.client("kinesis", endpoint_url=self._endpoint, config=self._cfg)
            self._clients[creds] = c
        return c

    def call(self, op, params, creds=None):
        from botocore.exceptions import ClientError

        c = self._client(creds)
        method = getattr(c, re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", op).lower())
        try:
            out = method(**params)
        except ClientError as e:
            err = e.response.get("Error", {})
            raise KinesisError(_strip_type(err.get("Code")), err.get("Message", ""),
                               e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        except Exception as e:  # param validation, connection errors, ...
            raise ClientFailure(f"{type(e).__name__}: {e}")
        out.pop("ResponseMetadata", None)
        return _normalize(out)

    def wait(self, waiter, params):
        """Run the client's own waiter ("StreamExists", "StreamNotExists")."""
        name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", waiter).lower()
        try:
            self._client(None).get_waiter(name).wait(WaiterConfig={"Delay": 1, "MaxAttempts": 30}, **params)
        except Exception as e:
            raise ClientFailure(f"waiter {name}: {type(e).__name__}: {e}")

    def close(self):
        for c in self._clients.values():
            c.close()


# ---------------------------------------------------------------------------
def _kebab(name):
    # ShardIteratorType -> shard-iterator-type, StreamARN -> stream-arn
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", name).lower()


class CliClient:
    ts_resolution_ms = 1000  # the CLI serialises timestamps through botocore

    def __init__(self, argv0, major, endpoint, region, creds, tmpdir):
        self.argv0 = argv0
        self.major = major
        self.name = f"awscli-v{major}"
        self._endpoint = endpoint
        self._region = region
        self._default_creds = creds
        self.default_creds = creds
        self._tmp = tmpdir
        self._n = 0
        v = subprocess.run([argv0, "--version"], capture_output=True, text=True, env=self._env(creds))
        self.version = (v.stdout + v.stderr).strip() + f" ({argv0})"

    def _env(self, creds):
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": creds[0],
            "AWS_SECRET_ACCESS_KEY": creds[1],
            "AWS_DEFAULT_REGION": self._region,
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
            "AWS_PAGER": "",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        return env

    def _file(self, data, binary):
        self._n += 1
        p = os.path.join(self._tmp, f"cli-arg-{self._n}")
        with open(p, "wb") as f:
            f.write(data if binary else data.encode("utf-8"))
        return p

    def _args(self, params):
        """API params -> CLI flags, or None when the call needs --cli-input-json."""
        args = []
        for k, v in params.items():
            flag = "--" + _kebab(k)
            if isinstance(v, bytes):
                args += [flag, "fileb://" + self._file(v, True)]
            elif isinstance(v, bool):
                args += [flag] if v else ["--no-" + _kebab(k)]
            elif isinstance(v, (int, float)):
                args += [flag, repr(v)]
            elif isinstance(v, str):
                if len(v) > 65536:
                    return None
                args += [flag, v]
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                args += [flag] + v
            else:  # structures, maps, lists of structures: JSON
                try:
                    js = json.dumps(v, default=self._json_blob)
                except _NotText:
                    return None
                if len(js) > 65536:
                    return None
                args += [flag, js]
        return args

    @staticmethod
    def _json_blob(v):
        # A blob inside a structure (PutRecords' Records[].Data) can only be
        # written as text: raw text in v2 (raw-in-base64-out), and v1 sends
        # JSON strings given for blobs as their raw bytes.
        if isinstance(v, bytes):
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                raise _NotText()
        raise TypeError(type(v))

    def call(self, op, params, creds=None):
        creds = creds or self._default_creds
        argv = [self.argv0, "kinesis", _kebab(op)]
        args = self._args(params)
        if args is None:
            js = json.dumps(params, default=self._json_blob)
            argv += ["--cli-input-json", "file://" + self._file(js, False)]
        else:
            argv += args
        argv += ["--endpoint-url", self._endpoint, "--region", self._region, "--output", "json",
                 "--no-paginate"]
        if self.major == 2:
            argv += ["--cli-binary-format", "raw-in-base64-out"]
        p = subprocess.run(argv, capture_output=True, text=True, env=self._env(creds), timeout=300)
        if p.returncode != 0:
            m = re.search(r"An error occurred \(([A-Za-z0-9_.#:]+)\)(?: when calling the \w+ operation)?"
                          r"(?: \([^)]*\))?:?\s*(.*)", p.stderr, re.S)
            if m:
                raise KinesisError(_strip_type(m.group(1)), m.group(2).strip())
            raise ClientFailure(f"exit {p.returncode}: {p.stderr.strip()[-2000:]}")
        out = json.loads(p.stdout) if p.stdout.strip() else {}
        if op == "GetRecords":  # the CLI prints blobs as base64
            for r in out.get("Records", []):
                r["Data"] = base64.b64decode(r["Data"])
        return _normalize(out)

    def wait(self, waiter, params):
        """`aws kinesis wait stream-exists|stream-not-exists ...`"""
        creds = self._default_creds
        argv = [self.argv0, "kinesis", "wait", _kebab(waiter)] + self._args(params)
        argv += ["--endpoint-url", self._endpoint, "--region", self._region]
        p = subprocess.run(argv, capture_output=True, text=True, env=self._env(creds), timeout=300)
        if p.returncode != 0:
            raise ClientFailure(f"aws kinesis wait {_kebab(waiter)}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")

    def close(self):
        pass


class _NotText(Exception):
    pass


# ---------------------------------------------------------------------------
class JsClient:
    name = "js-sdk-v3"
    ts_resolution_ms = 1  # the JS SDK sends epoch seconds with milliseconds

    def __init__(self, node, adapter_dir, endpoint, region, creds):
        self._default_creds = creds
        self.default_creds = creds
        env = dict(os.environ)
        env.pop("AWS_PROFILE", None)
        env.update({"AWS_ACCESS_KEY_ID": creds[0], "AWS_SECRET_ACCESS_KEY": creds[1],
                    "AWS_REGION": region, "AWS_EC2_METADATA_DISABLED": "true"})
        self._p = subprocess.Popen([node, "--no-warnings", os.path.join(adapter_dir, "adapter.cjs"),
                                    endpoint, region],
                                   cwd=adapter_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True, env=env)
        with open(os.path.join(adapter_dir, "node_modules", "@aws-sdk", "client-kinesis",
                               "package.json")) as f:
            sdkv = json.load(f)["version"]
        nv = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        self.handler = self._rpc({"op": "$handler", "creds": None})["ok"]["handler"]
        self.version = f"@aws-sdk/client-kinesis {sdkv} on node {nv}, request handler {self.handler}"

    def _rpc(self, req):
        self._p.stdin.write(json.dumps(req) + "\n")
        self._p.stdin.flush()
        line = self._p.stdout.readline()
        if not line:
            raise ClientFailure(f"js adapter exited ({self._p.poll()})")
        return json.loads(line)

    @staticmethod
    def _enc(v, key=None):
        if isinstance(v, bytes):
            return {"$b64": base64.b64encode(v).decode()}
        if isinstance(v, str) and key == "Data":
            return {"$b64": base64.b64encode(v.encode("utf-8")).decode()}
        if key == "Timestamp" and isinstance(v, (int, float)):
            return {"$date": round(v * 1000)}
        if isinstance(v, dict):
            return {k: JsClient._enc(x, k) for k, x in v.items()}
        if isinstance(v, list):
            return [JsClient._enc(x, key) for x in v]
        return v

    @staticmethod
    def _dec(v):
        if isinstance(v, dict):
            if set(v) == {"$b64"}:
                return base64.b64decode(v["$b64"])
            if set(v) == {"$date"}:
                return v["$date"] / 1000.0
            return {k: JsClient._dec(x) for k, x in v.items()}
        if isinstance(v, list):
            return [JsClient._dec(x) for x in v]
        return v

    def call(self, op, params, creds=None):
        ans = self._rpc({"op": op, "params": self._enc(params), "creds": list(creds) if creds else None})
        if "error" in ans:
            e = ans["error"]
            code = e.get("code") or ""
            # Errors the service sent carry an HTTP status; anything else is the client's own.
            if not e.get("status"):
                raise ClientFailure(f"{code}: {e.get('message')}")
            raise KinesisError(_strip_type(code), e.get("message", ""), e.get("status"))
        return _normalize(self._dec(ans["ok"]))

    def wait(self, waiter, params):
        """The SDK's waitUntilStreamExists / waitUntilStreamNotExists."""
        ans = self._rpc({"op": "$wait", "waiter": waiter, "params": self._enc(params), "creds": None})
        if "error" in ans:
            raise ClientFailure(f"waitUntil{waiter}: {ans['error']}")
        if ans["ok"].get("state") != "SUCCESS":
            raise ClientFailure(f"waitUntil{waiter}: {ans['ok']}")

    def close(self):
        try:
            self._p.stdin.close()
            self._p.wait(timeout=60)
        except Exception:
            self._p.kill()
            self._p.wait()
