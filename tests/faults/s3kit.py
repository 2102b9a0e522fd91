"""An S3 server for the object-storage tests: moto on 127.0.0.1, started in the test
process (no network), with one bucket and test credentials in the environment.

Load its fixture with ``pytest_plugins = ("tests.faults.s3kit",)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

BUCKET = "hpt-results"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask a cloud's metadata service
}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server on loopback with one bucket; credentials in the environment."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the test extra")
    import pyarrow.fs as pafs

    saved = {key: os.environ.get(key) for key in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    query = f"?endpoint_override={host}:{port}&scheme=http"
    fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}{query}&allow_bucket_creation=true")
    fs.create_dir(BUCKET)
    try:
        yield {"query": query, "fs": fs, "server": server}
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def uri(s3: dict[str, Any], prefix: str) -> str:
    return f"s3://{BUCKET}/{prefix}{s3['query']}"


def objects(s3: dict[str, Any], prefix: str) -> list:
    """The objects (not folders) under ``prefix`` in the bucket."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(f"{BUCKET}/{prefix}", allow_not_found=True, recursive=True)
    return [info for info in s3["fs"].get_file_info(selector) if info.is_file]
