"""The one contract between mlcycle's operator, trainer image and model server.

Pure pydantic and the standard library: no kopf, kubernetes, scikit-learn or MLflow
import, so each of the three programs installs it without the others' dependencies.
"""
