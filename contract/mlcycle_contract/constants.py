"""Names shared by mlcycle's programs: API group and kinds, label and annotation keys.

Everything that ends up on a Kubernetes object as a key is spelled here once.
"""

from __future__ import annotations

from dataclasses import dataclass

API_GROUP = "mlcycle.dev"
API_VERSION = "v1alpha1"
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

# `kubectl get mlcycle` lists every mlcycle resource in the namespace.
CATEGORY = "mlcycle"


@dataclass(frozen=True)
class ResourceNames:
    """The names under which one custom resource kind is served."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"


# `ds` is DaemonSet's and `md` Cluster API's MachineDeployment's short name: kubectl
# would resolve them to those, so ours are distinct.
DATASET = ResourceNames(
    kind="Dataset", plural="datasets", singular="dataset", short_names=("dset",)
)
TRAINING_JOB = ResourceNames(
    kind="TrainingJob", plural="trainingjobs", singular="trainingjob", short_names=("tj",)
)
MODEL_DEPLOYMENT = ResourceNames(
    kind="ModelDeployment",
    plural="modeldeployments",
    singular="modeldeployment",
    short_names=("mdep",),
)

KEY_PREFIX = f"{API_GROUP}/"

# Labels on every child object, so children can be listed by owner and stage.
LABEL_DATASET = f"{KEY_PREFIX}dataset"
LABEL_TRAINING_JOB = f"{KEY_PREFIX}training-job"
LABEL_MODEL_DEPLOYMENT = f"{KEY_PREFIX}model-deployment"
LABEL_COMPONENT = f"{KEY_PREFIX}component"
LABEL_DATASET_VERSION = f"{KEY_PREFIX}dataset-version"
LABEL_MODEL_NAME = f"{KEY_PREFIX}model-name"
LABEL_MODEL_VERSION = f"{KEY_PREFIX}model-version"

# Values of LABEL_COMPONENT.
COMPONENT_INGEST = "ingest"
COMPONENT_TRAIN = "train"
COMPONENT_SERVE = "serve"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "mlcycle"

# Set on a Dataset or TrainingJob by a user (any new value) to ask for an immediate
# re-ingestion or retraining.
ANNOTATION_REQUESTED_AT = f"{KEY_PREFIX}requested-at"

# kopf keeps its progress and diff-base records in annotations under this prefix, never
# in status, which strict CRD schemas would prune.
KOPF_ANNOTATION_PREFIX = f"kopf.{API_GROUP}"
