"""The API types of mlcycle's custom resources: the single source of truth for the CRDs."""

from mlcycle.api.dataset import DATASET_RESOURCE
from mlcycle.api.modeldeployment import MODEL_DEPLOYMENT_RESOURCE
from mlcycle.api.resource import ResourceDefinition
from mlcycle.api.trainingjob import TRAINING_JOB_RESOURCE

RESOURCES: tuple[ResourceDefinition, ...] = (
    DATASET_RESOURCE,
    TRAINING_JOB_RESOURCE,
    MODEL_DEPLOYMENT_RESOURCE,
)

__all__ = ["RESOURCES", "ResourceDefinition"]
