"""Parsing and normalising a source into the one snapshot shape; bad input is named."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest

from mlcycle_trainer.errors import InvalidInput
from mlcycle_trainer.frames import normalise, parse, schema


def reason_of(excinfo: pytest.ExceptionInfo[InvalidInput]) -> str:
    return excinfo.value.reason


def test_names_are_stripped_features_keep_their_order_and_the_target_goes_last() -> None:
    frame = pd.DataFrame({" zeta ": [1], "y": [0], "alpha": [2.0], "Mid": ["m"]})
    result = normalise(frame, "y", None)
    assert list(result.columns) == ["zeta", "alpha", "Mid", "y"]


def test_dtypes_are_reduced_to_four() -> None:
    frame = pd.DataFrame(
        {
            "int8": np.array([1, 2, 3], dtype="int8"),
            "uint16": np.array([1, 2, 3], dtype="uint16"),
            "nullable_int": pd.array([1, None, 3], dtype="Int64"),
            "nullable_int_full": pd.array([1, 2, 3], dtype="Int32"),
            "float32": np.array([0.5, 1.5, 2.5], dtype="float32"),
            "bool": [True, False, True],
            "boolean_with_na": pd.array([True, None, False], dtype="boolean"),
            "category": pd.Categorical(["a", "b", "a"]),
            "text": ["x", None, "z"],
            "dates": pd.to_datetime(["2024-01-01", "2024-01-02", None]),
            "target": [0, 1, 0],
        }
    )
    dtypes = {item.name: item.dtype for item in schema(normalise(frame, "target", None))}
    assert dtypes == {
        "int8": "int64",
        "uint16": "int64",
        "nullable_int": "float64",
        "nullable_int_full": "int64",
        "float32": "float64",
        "bool": "bool",
        "boolean_with_na": "float64",
        "category": "string",
        "text": "string",
        "dates": "string",
        "target": "int64",
    }


def test_missing_text_stays_missing() -> None:
    result = normalise(pd.DataFrame({"text": ["x", None], "target": [1, 2]}), "target", None)
    assert result["text"].isna().tolist() == [False, True]


def test_a_missing_target_names_it_and_lists_the_columns() -> None:
    frame = pd.DataFrame({"a": [1], "b": [2]})
    with pytest.raises(InvalidInput) as excinfo:
        normalise(frame, "label", None)
    assert reason_of(excinfo) == "TargetColumnMissing"
    assert "'label'" in excinfo.value.message
    assert "a, b" in excinfo.value.message


def test_requested_features_must_exist() -> None:
    frame = pd.DataFrame({"a": [1], "b": [2], "y": [0]})
    with pytest.raises(InvalidInput) as excinfo:
        normalise(frame, "y", ("a", "c"))
    assert reason_of(excinfo) == "FeatureColumnMissing"
    assert "c" in excinfo.value.message.split(";")[0]


def test_requested_features_select_the_columns() -> None:
    frame = pd.DataFrame({"a": [1], "b": [2], "c": [3], "y": [0]})
    assert list(normalise(frame, "y", ("c", "a")).columns) == ["c", "a", "y"]


def test_names_that_collide_after_stripping_are_refused() -> None:
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "a ", "y"])
    with pytest.raises(InvalidInput) as excinfo:
        normalise(frame, "y", None)
    assert reason_of(excinfo) == "InvalidColumns"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (
            pd.DataFrame({"a": pd.Series([], dtype="int64"), "y": pd.Series([], dtype="int64")}),
            "EmptyDataset",
        ),
        (pd.DataFrame({"y": [1, 2]}), "NoFeatureColumns"),
        (pd.DataFrame({"a": [1, 2], "y": [None, None]}), "EmptyDataset"),
    ],
    ids=["no rows", "only the target", "target without values"],
)
def test_unusable_frames_are_refused(frame: pd.DataFrame, reason: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        normalise(frame, "y", None)
    assert reason_of(excinfo) == reason


def test_csv_may_be_gzip_compressed() -> None:
    frame = parse(gzip.compress(b"a,y\n1,2\n"), "csv", "test")
    assert frame.to_dict("list") == {"a": [1], "y": [2]}


def test_parquet_is_read() -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1.5], "y": ["k"]}).to_parquet(buffer)
    assert parse(buffer.getvalue(), "parquet", "test")["y"].tolist() == ["k"]


@pytest.mark.parametrize(
    ("data", "data_format", "reason"),
    [
        (b"", "csv", "EmptyDataset"),
        (b"\n\n", "csv", "EmptyDataset"),
        (b"a,y\n1,2\n", "parquet", "SourceUnreadable"),
        (b"\xff\xfe\x00bad", "csv", "SourceUnreadable"),
        (b'a,y\n"1,2\n', "csv", "SourceUnreadable"),
    ],
    ids=["empty", "blank lines", "csv announced as parquet", "binary", "unterminated quote"],
)
def test_unreadable_sources_are_named(data: bytes, data_format: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        parse(data, data_format, "s3://bucket/data")
    assert reason_of(excinfo) == reason
    assert "s3://bucket/data" in excinfo.value.message
