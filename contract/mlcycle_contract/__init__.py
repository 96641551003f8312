"""The one contract between mlcycle's operator, trainer image and model server.

`api` holds the custom resources' types and the algorithm table, `environment` what the
operator hands its Jobs and model servers, `results` what the trainer answers, `constants`
the names on Kubernetes objects. Pure pydantic and the standard library: no kopf,
kubernetes, scikit-learn or MLflow import, so each of the three programs installs it
without the others' dependencies.
"""
