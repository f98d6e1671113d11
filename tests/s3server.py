"""A real S3-compatible server on loopback for the tests: moto in server mode, as a subprocess.

One server per test session (the ``s3`` fixture in tests/conftest.py). It enforces credentials
(``INITIAL_NO_AUTH_ACTION_COUNT``: the first requests, which create an IAM user with an allow-all
policy and its access key, are the only unauthenticated ones), so a wrong key is refused as a real
bucket would refuse it. Each test makes its own bucket (:meth:`S3Server.bucket`) and object store
secret bodies (:meth:`S3Server.secret_body`); nothing is shared between tests but the process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SETUP_CALLS = 3  # create_user, put_user_policy, create_access_key


@dataclass
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    host_port: str  # 127.0.0.1:PORT (what an AI Core secret's `endpoint` holds, with usehttps "0")
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self, *, access_key_id: str | None = None, secret_access_key: str | None = None) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=access_key_id or self.access_key_id,
                            aws_secret_access_key=secret_access_key or self.secret_access_key)

    def bucket(self, prefix: str = "b") -> str:
        """A new, empty bucket."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def secret_body(self, name: str, bucket: str, *, path_prefix: str = "", secret_access_key: str | None = None,
                    access_key_id: str | None = None) -> dict[str, Any]:
        """An AI Core object store secret body (``POST /v2/admin/objectStoreSecrets``) for ``bucket``."""
        body: dict[str, Any] = {
            "name": name, "type": "S3", "bucket": bucket, "endpoint": self.host_port, "region": self.region,
            "usehttps": "0", "data": {"AWS_ACCESS_KEY_ID": access_key_id or self.access_key_id,
                                      "AWS_SECRET_ACCESS_KEY": secret_access_key or self.secret_access_key}}
        if path_prefix:
            body["pathPrefix"] = path_prefix
        return body

    def target(self, bucket: str, prefix: str = "", **kw: Any) -> Any:
        from orchestrator.store.objects_s3 import S3Target

        return S3Target(bucket, prefix, self.endpoint, self.region, kw.get("access_key_id", self.access_key_id),
                        kw.get("secret_access_key", self.secret_access_key), name=kw.get("name", "test"))

    def keys(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """Every key under ``prefix`` -> its LastModified."""
        out: dict[str, Any] = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.update({o["Key"]: o["LastModified"] for o in page.get("Contents", ())})
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(timeout: float = 30.0) -> S3Server:
    """Start moto's server on a free loopback port; returns once it answers, with a valid key."""
    import boto3

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_CALLS)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        iam.create_user(UserName="orchestrator-tests")
        iam.put_user_policy(UserName="orchestrator-tests", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="orchestrator-tests")["AccessKey"]
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return S3Server(endpoint, f"127.0.0.1:{port}", key["AccessKeyId"], key["SecretAccessKey"], proc=proc)
