"""spec.image overrides: a Pod runs with its namespace's credentials, so an image runs only
when the operator's allow-list names it; anything else is refused before any Pod exists."""

from __future__ import annotations

from typing import Any

import pytest

from mlcycle.objects import Invalid, parse_model_deployment, parse_training_job
from mlcycle.reconcile.modeldeployment import spec_refusal
from mlcycle.reconcile.trainingjob import NotRunnable, check_spec
from mlcycle.settings import Settings
from mlcycle_contract import constants

OURS = Settings(trainer_image="registry.local/trainer:1", serving_image="registry.local/serving:1")
ACME = OURS.model_copy(update={"allowed_images": ["ghcr.io/acme/*", "docker.io/library/x:1"]})


def body(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": constants.API_GROUP_VERSION, "kind": kind,
            "metadata": {"name": "iris", "namespace": "ml", "uid": "u", "generation": 1},
            "spec": spec}


def training_job(image: str | None) -> Any:
    parsed = parse_training_job(body("TrainingJob", {
        "datasetRef": {"name": "iris"}, "algorithm": "random_forest_classifier",
        **({"image": image} if image else {})}))
    assert not isinstance(parsed, Invalid), parsed
    return parsed


def model_deployment(image: str | None) -> Any:
    return parse_model_deployment(body("ModelDeployment", {
        "model": {"name": "iris", "alias": "champion"}, **({"image": image} if image else {})}))


def test_by_default_only_the_operators_own_images_may_be_named() -> None:
    assert OURS.image_allowed("registry.local/trainer:1")
    assert OURS.image_allowed("registry.local/serving:1")
    assert not OURS.image_allowed("registry.local/trainer:2")
    assert not OURS.image_allowed("ghcr.io/acme/trainer:1")


def test_the_allow_list_holds_shell_patterns_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"MLCYCLE_ALLOWED_IMAGES": "ghcr.io/acme/*, docker.io/library/x:1"})
    assert settings.allowed_images == ["ghcr.io/acme/*", "docker.io/library/x:1"]
    assert settings.image_allowed("ghcr.io/acme/trainer:2")
    assert settings.image_allowed("docker.io/library/x:1")
    assert not settings.image_allowed("docker.io/library/x:2")
    assert not settings.image_allowed("ghcr.io/acme-evil/trainer:1")


def test_a_training_job_with_an_image_off_the_list_is_refused_naming_the_field() -> None:
    check_spec(training_job(None), OURS)
    check_spec(training_job("ghcr.io/acme/trainer:2"), ACME)
    with pytest.raises(NotRunnable) as refused:
        check_spec(training_job("evil.example/steal:1"), ACME)
    assert refused.value.reason == "ImageNotAllowed"
    assert refused.value.message.startswith("spec.image: 'evil.example/steal:1' is not on")


@pytest.mark.parametrize("image", ["evil.example/steal:1", "registry.local/trainer:1x"])
def test_a_model_deployment_with_an_image_off_the_list_is_refused(image: str) -> None:
    assert spec_refusal(model_deployment(None), OURS) is None
    assert spec_refusal(model_deployment("ghcr.io/acme/serving:3"), ACME) is None
    refusal = spec_refusal(model_deployment(image), ACME)
    assert refusal is not None and refusal[0] == "ImageNotAllowed"
    assert refusal[1].startswith(f"spec.image: {image!r} is not on")
