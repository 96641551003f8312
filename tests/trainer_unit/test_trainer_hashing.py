"""The Dataset version is a content hash: stable across runs, equal for equal content."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlcycle_trainer.frames import normalise, parse
from mlcycle_trainer.hashing import content_hash, dataset_version

CSV = b"city,temperature,rainy,label\nOslo,3.5,true,a\nRome,18.0,false,b\n,21.25,false,a\n"
# Pinned: a change of the canonical encoding would give every Dataset a new version (and
# retrain every model); such a change must be deliberate.
PINNED_VERSION = "425be662af2e2af4"


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    return normalise(frame, "label", None)


def test_version_is_the_first_16_hex_digits_of_sha256() -> None:
    frame = normalised(parse(CSV, "csv", "test"))
    digest = content_hash(frame)
    assert len(digest) == 64
    assert dataset_version(frame) == digest[:16]
    int(digest, 16)


def test_version_is_pinned_across_runs_and_machines() -> None:
    assert dataset_version(normalised(parse(CSV, "csv", "test"))) == PINNED_VERSION


def test_version_is_the_same_in_a_fresh_interpreter() -> None:
    code = (
        "from mlcycle_trainer.frames import normalise, parse;"
        "from mlcycle_trainer.hashing import dataset_version;"
        f"print(dataset_version(normalise(parse({CSV!r}, 'csv', 't'), 'label', None)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == PINNED_VERSION


def test_identical_content_from_csv_and_parquet_has_one_version() -> None:
    from_csv = normalised(parse(CSV, "csv", "test"))
    buffer = io.BytesIO()
    pd.read_csv(io.BytesIO(CSV)).to_parquet(buffer, index=False)
    from_parquet = normalised(parse(buffer.getvalue(), "parquet", "test"))
    assert dataset_version(from_parquet) == dataset_version(from_csv)


def test_name_padding_does_not_change_the_version_but_column_order_does() -> None:
    """Feature order is content: it is the order of a served model's positional inputs."""
    frame = pd.read_csv(io.BytesIO(CSV))
    padded = frame.rename(columns={"city": " city "})
    assert dataset_version(normalised(padded)) == dataset_version(normalised(frame))
    shuffled = frame[["label", "rainy", "city", "temperature"]]
    assert dataset_version(normalised(shuffled)) != dataset_version(normalised(frame))


def test_narrow_dtypes_normalise_to_the_same_version() -> None:
    wide = pd.DataFrame({"x": np.array([1, 2, 3], dtype="int64"), "label": [0.5, 1.5, 2.5]})
    narrow = pd.DataFrame(
        {"x": np.array([1, 2, 3], dtype="int8"), "label": np.float32([0.5, 1.5, 2.5])}
    )
    assert dataset_version(normalised(narrow)) == dataset_version(normalised(wide))


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(temperature=f["temperature"].where(f.index != 0, 3.6)),
        lambda f: f.rename(columns={"temperature": "temp"}),
        lambda f: f.iloc[::-1],
        lambda f: f.iloc[:2],
        lambda f: f.assign(city=f["city"].fillna("")),
        lambda f: f.assign(rainy=f["rainy"].astype("int64")),
    ],
    ids=["value", "column name", "row order", "row count", "missing vs empty text", "dtype"],
)
def test_any_change_of_content_changes_the_version(change: object) -> None:
    frame = pd.read_csv(io.BytesIO(CSV))
    changed = change(frame)  # type: ignore[operator]
    assert dataset_version(normalised(changed)) != dataset_version(normalised(frame))


def test_nan_payloads_do_not_matter() -> None:
    quiet = np.array([np.nan, 1.0])
    other = np.array(
        [np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), dtype=np.float64)[0], 1.0]
    )
    assert np.isnan(other[0])
    first = normalised(pd.DataFrame({"x": quiet, "label": [1, 2]}))
    second = normalised(pd.DataFrame({"x": other, "label": [1, 2]}))
    assert content_hash(first) == content_hash(second)


def test_a_frame_that_is_not_normalised_is_refused() -> None:
    with pytest.raises(ValueError, match="normalise"):
        content_hash(pd.DataFrame({"x": np.array([1], dtype="int8")}))
