"""mlcycle's model server: one MLflow model behind the V2, KServe V1 and MLflow protocols.

Runs inside the model's runtime image and never imports the operator (`mlcycle`).
Entry point: `python -m mlcycle_serving`; app factory: `mlcycle_serving.app.create_app`.
"""

__version__ = "0.1.0"
