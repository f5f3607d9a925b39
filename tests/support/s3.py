"""The S3 protocol for tests: moto's server on a free port, so the ``minio`` client code
path is the one tested."""

from __future__ import annotations

import os

from millrace_cli.processes import free_port
from moto.server import ThreadedMotoServer


def start_s3() -> tuple[ThreadedMotoServer, str]:
    """A started moto S3 server and its endpoint URL; the AWS variables the services' S3
    clients need are set for this process and its children."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "millrace-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "millrace-test-secret")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"
