"""An s3 source the object storage refuses to read (another namespace's prefix) fails with
SourceAccessDenied naming spec.source.s3, the bucket and the key: the storage decides."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlcycle_trainer.errors import InvalidInput
from mlcycle_trainer.sources import fetch_s3
from mlcycle_trainer.storage import ObjectStore


class Refusing:
    """A boto3 client stand-in answering as MinIO does outside the user's policy."""

    def get_object(self, **_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied."},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")


def test_a_refused_s3_source_is_source_access_denied_naming_the_field_bucket_and_key() -> None:
    with pytest.raises(InvalidInput) as refused:
        fetch_s3("s3://mlcycle-data/datasets/other/iris/v1/data.csv", ObjectStore(Refusing()))
    assert refused.value.reason == "SourceAccessDenied"
    assert refused.value.field == "spec.source.s3"
    assert refused.value.message.startswith(
        "spec.source.s3: the object storage refused to read bucket 'mlcycle-data' key "
        "'datasets/other/iris/v1/data.csv'")
