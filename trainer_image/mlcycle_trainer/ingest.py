"""`ingest`: fetch a Dataset's source, validate and normalise it, and store an immutable,
content-addressed snapshot (plus its profile) under
s3://$MLCYCLE_DATA_BUCKET/datasets/<namespace>/<name>/<version>/.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from mlcycle_contract.api.dataset import DatasetSpec, ProfileSummary, SourceValidators
from mlcycle_contract.environment import DATA_BUCKET, DATASET_SPEC, SOURCE_VALIDATORS
from mlcycle_contract.results import IngestionResult, SourceUnchangedResult
from mlcycle_trainer import frames, sources
from mlcycle_trainer.addresses import AddressPolicy
from mlcycle_trainer.environment import Owner, model_from_json, optional, required
from mlcycle_trainer.hashing import dataset_version
from mlcycle_trainer.logs import redact
from mlcycle_trainer.profile import build_profile, summary
from mlcycle_trainer.snapshots import write_snapshot
from mlcycle_trainer.storage import ObjectStore, S3Location

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "data.parquet"
PROFILE_DIR = "profile"
PROFILE_FILE = "profile.json"
REPORT_FILE = "report.html"


def profile_directory(snapshot_uri: str) -> S3Location:
    """Where the profile of the snapshot at `snapshot_uri` is written."""
    snapshot = S3Location.parse(snapshot_uri)
    return S3Location(snapshot.bucket, snapshot.key.rpartition("/")[0]).child(PROFILE_DIR)


def snapshot_prefix(bucket: str, owner: Owner, version: str) -> S3Location:
    return S3Location(bucket, f"datasets/{owner.namespace}/{owner.name}/{version}")


def load_frame(
    spec: DatasetSpec, store: ObjectStore, policy: AddressPolicy,
    since: SourceValidators | None = None,
) -> tuple[pd.DataFrame, sources.Fetched | None] | sources.Unchanged:
    """The source's data as it comes, before normalisation, with what was downloaded (None
    for a builtin source); Unchanged when `since` shows the source has not changed."""
    if spec.source.builtin is not None:
        return sources.load_builtin(spec.source.builtin, spec.target), None
    fetched = sources.fetch_raw(spec.source, store, policy, since)
    if isinstance(fetched, sources.Unchanged):
        return fetched
    return frames.parse(fetched.data, spec.format, sources.describe(spec.source)), fetched


def run_ingest(store: ObjectStore | None = None) -> IngestionResult | SourceUnchangedResult:
    """Ingest the Dataset described by the environment; on a refresh check (the last
    download's validators given), first ask the source whether it changed."""
    owner = Owner.from_environment()
    spec = model_from_json(DATASET_SPEC, DatasetSpec, "spec")
    bucket = required(DATA_BUCKET)
    policy = AddressPolicy.from_environment()
    since = (model_from_json(SOURCE_VALIDATORS, SourceValidators, "source")
             if optional(SOURCE_VALIDATORS) else None)
    store = store or ObjectStore()

    loaded = load_frame(spec, store, policy, since)
    if isinstance(loaded, sources.Unchanged):
        logger.info("Dataset %s/%s: source unchanged (%s)", owner.namespace, owner.name,
                    loaded.evidence)
        return SourceUnchangedResult(unchanged=True, evidence=redact(loaded.evidence)[:512])
    raw_frame, fetched = loaded
    frame = frames.normalise(raw_frame, spec.target, spec.features)
    version = dataset_version(frame)
    prefix = snapshot_prefix(bucket, owner, version)
    snapshot = prefix.child(SNAPSHOT_FILE)
    logger.info(
        "Dataset %s/%s has version %s (%d rows, %d columns)",
        owner.namespace,
        owner.name,
        version,
        len(frame),
        len(frame.columns),
    )
    write_snapshot(store, snapshot, frame)

    profile = (
        ensure_profile(store, frame, spec, owner, prefix.child(PROFILE_DIR), version)
        if spec.profile.enabled
        else None
    )
    return IngestionResult(
        version=version,
        snapshot_uri=snapshot.uri,
        rows=len(frame),
        columns=len(frame.columns),
        schema_=frames.schema(frame),
        profile=profile,
        source=fetched.validators if fetched else None,
        downloaded_bytes=len(fetched.data) if fetched else 0,
    )


def ensure_profile(
    store: ObjectStore,
    frame: pd.DataFrame,
    spec: DatasetSpec,
    owner: Owner,
    directory: S3Location,
    version: str,
) -> ProfileSummary:
    """The profile summary; computed and uploaded unless this version has one already.

    profile.json is uploaded last, so its presence means the profile is complete.
    """
    from mlcycle_trainer.plots import draw_plots
    from mlcycle_trainer.report import render_report

    profile_location = directory.child(PROFILE_FILE)
    report_uri = directory.child(REPORT_FILE).uri
    if store.exists(profile_location):
        logger.info("Profile %s exists already; not computed again", profile_location.uri)
        return summary(json.loads(store.get(profile_location)), report_uri)

    profile = build_profile(frame, spec.target)
    profile_json = {"version": version, **profile.as_json()}
    plots = draw_plots(frame, profile)
    for file_name, png in plots.items():
        store.put(directory.child(file_name), png, "image/png")
    facts = {
        "Dataset": f"{owner.namespace}/{owner.name}",
        "Version": version,
        "Source": redact(sources.describe(spec.source)),
        "Rows": str(profile.rows),
        "Columns": str(len(frame.columns)),
        "Target": f"{spec.target} ({profile.task})",
        "Duplicate rows": str(profile.duplicate_rows),
    }
    html = render_report(profile_json, f"Dataset {owner.name} @ {version}", facts, sorted(plots))
    store.put(directory.child(REPORT_FILE), html.encode("utf-8"), "text/html; charset=utf-8")
    store.put(
        profile_location, json.dumps(profile_json, indent=1).encode("utf-8"), "application/json"
    )
    logger.info(
        "Profiled version %s: %d warnings, report %s", version, len(profile.warnings), report_uri
    )
    return summary(profile_json, report_uri)
