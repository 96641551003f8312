"""Object storage (S3 or MinIO) through boto3, with failures sorted into transient or not.

The endpoint comes from AWS_ENDPOINT_URL_S3 or, as MLflow reads it, MLFLOW_S3_ENDPOINT_URL;
the credentials from the standard AWS variables, which boto3 reads itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mlcycle_contract.environment import (
    AWS_ACCESS_KEY_ID,
    AWS_ENDPOINT_URL_S3,
    MLFLOW_S3_ENDPOINT_URL,
)
from mlcycle_trainer.errors import (
    ACCESS_DENIED,
    INVALID_ENVIRONMENT,
    INVALID_SPEC,
    STORAGE_UNAVAILABLE,
    InvalidInput,
    Transient,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

logger = logging.getLogger(__name__)

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
}


@dataclass(frozen=True)
class S3Location:
    """An object's bucket and key."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise InvalidInput(INVALID_SPEC, f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or not key:
            raise InvalidInput(INVALID_SPEC, f"an S3 URI needs a bucket and a key: {uri!r}")
        return cls(bucket, key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.key.rstrip('/')}/{name}")


class ObjectMissing(Exception):
    """The object (or its bucket) does not exist."""


class ObjectExists(Exception):
    """A write that must not overwrite found an object under its key."""


def endpoint_url() -> str | None:
    return (
        os.environ.get(AWS_ENDPOINT_URL_S3.name)
        or os.environ.get(MLFLOW_S3_ENDPOINT_URL.name)
        or None
    )


class ObjectStore:
    """get / put / exists on S3 objects; errors become ObjectMissing, ObjectExists, InvalidInput
    or Transient."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url(),
            region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 4, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    def get(self, location: S3Location, max_bytes: int | None = None) -> bytes:
        with _storage_errors(location):
            response = self._client.get_object(Bucket=location.bucket, Key=location.key)
            size = int(response.get("ContentLength") or 0)
            if max_bytes is not None and size > max_bytes:
                response["Body"].close()
                raise ObjectTooLarge(size)
            data: bytes = response["Body"].read()
            return data

    def exists(self, location: S3Location) -> bool:
        try:
            with _storage_errors(location):
                self._client.head_object(Bucket=location.bucket, Key=location.key)
                return True
        except ObjectMissing:
            return False

    def etag(self, location: S3Location) -> str:
        """The object's ETag, from a HEAD request: nothing of its content is downloaded."""
        with _storage_errors(location):
            head = self._client.head_object(Bucket=location.bucket, Key=location.key)
            return str(head.get("ETag") or "")

    def keys_after(self, prefix: S3Location, start_after: str = "") -> list[str]:
        """The keys under `prefix` that sort after `start_after`, in order."""
        keys: list[str] = []
        with _storage_errors(prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=prefix.bucket, Prefix=prefix.key, StartAfter=start_after)
            for page in pages:
                keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        return keys

    def put(self, location: S3Location, data: bytes, content_type: str) -> None:
        self._put(location, data, content_type, overwrite=True)

    def put_new(self, location: S3Location, data: bytes, content_type: str) -> bool:
        """Write an object unless one exists under its key; False when one does.

        The storage itself refuses the overwrite (a conditional put, `If-None-Match: *`), so
        two writers racing for one key cannot both succeed.
        """
        try:
            self._put(location, data, content_type, overwrite=False)
        except ObjectExists:
            return False
        return True

    def _put(
        self, location: S3Location, data: bytes, content_type: str, *, overwrite: bool
    ) -> None:
        request: PutObjectRequestTypeDef = {
            "Bucket": location.bucket,
            "Key": location.key,
            "Body": data,
            "ContentType": content_type,
        }
        if not overwrite:
            request["IfNoneMatch"] = "*"
        with _storage_errors(location):
            self._client.put_object(**request)
        logger.info("Uploaded %s (%d bytes)", location.uri, len(data))


class ObjectTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


@contextmanager
def _storage_errors(location: S3Location) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _NOT_FOUND or status == "404":
            raise ObjectMissing(location.uri) from exc
        if code == "PreconditionFailed" or status == "412":
            raise ObjectExists(location.uri) from exc
        if code in _DENIED or status == "403":
            raise InvalidInput(
                ACCESS_DENIED, f"access to {location.uri} was denied ({code or status})"
            ) from exc
        raise Transient(
            STORAGE_UNAVAILABLE, f"object storage failed on {location.uri}: {code or status}"
        ) from exc
    except NoCredentialsError as exc:
        raise InvalidInput(
            INVALID_ENVIRONMENT, f"no S3 credentials ({AWS_ACCESS_KEY_ID.name} is not set)"
        ) from exc
    except BotoCoreError as exc:
        raise Transient(
            STORAGE_UNAVAILABLE, f"object storage unreachable for {location.uri}: {exc}"
        ) from exc
