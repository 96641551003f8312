"""What every pod worker shares: configuration, API access and node-wide resources."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .config import NodeConfig
from .events import EventRecorder
from .images import Interpreter
from .kube import Kube, KubeLookups
from .network import IpPool

JSON = dict[str, Any]


@dataclass
class NodeServices:
    config: NodeConfig
    kube: Kube
    lookups: KubeLookups
    events: EventRecorder
    ips: IpPool
    interp: Interpreter
    stop: threading.Event
    allocatable: dict[str, str]
    service_env: dict[str, str]
