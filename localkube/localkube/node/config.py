"""The node agent's configuration: the one contract between the cluster harness and the agent.

The harness writes this as JSON (`NodeConfig.model_dump_json()`) and starts
`python -m localkube.node --config PATH`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class ImageRuntime(BaseModel):
    """How a container image maps to a local program.

    `entrypoint` stands in for the image's ENTRYPOINT: it is used when the container
    sets no `command`. The words `{python}` and `{venv_bin}` are replaced by the
    project's virtualenv interpreter and its `bin` directory.
    """

    pattern: str = Field(description="fnmatch pattern on the image reference, e.g. 'python:*'")
    entrypoint: list[str] = Field(default_factory=list)
    working_dir: str | None = Field(default=None, description="default working directory")


class NodeConfig(BaseModel):
    """Everything the node agent needs to know about the cluster it joins."""

    node_name: str
    kubeconfig: Path = Field(description="kubeconfig the agent uses to talk to the apiserver")
    state_dir: Path = Field(description="per-pod files: logs, volumes, termination messages")
    bridge: str = Field(description="Linux bridge the harness created for pods")
    host_ip: str = Field(description="the host's address on the bridge; also the node address")
    pod_cidr: str = Field(description="pod addresses are taken from here, e.g. 10.244.0.0/24")
    api_host: str = Field(description="apiserver address that pods can reach")
    api_port: int
    ca_file: Path = Field(description="cluster CA; becomes ca.crt in service-account volumes")
    kubelet_port: int = Field(description="port of the kubelet API (logs) on host_ip")
    kubelet_cert_file: Path
    kubelet_key_file: Path
    cpu: str = "2"
    memory: str = "8Gi"
    max_pods: int = 110
    images: list[ImageRuntime] = Field(default_factory=list)
