"""The three custom resources, in the order the CRDs are generated and installed."""

from mlcycle_contract.api.dataset import DATASET_RESOURCE
from mlcycle_contract.api.modeldeployment import MODEL_DEPLOYMENT_RESOURCE
from mlcycle_contract.api.resource import ResourceDefinition
from mlcycle_contract.api.trainingjob import TRAINING_JOB_RESOURCE

RESOURCES: tuple[ResourceDefinition, ...] = (
    DATASET_RESOURCE,
    TRAINING_JOB_RESOURCE,
    MODEL_DEPLOYMENT_RESOURCE,
)
