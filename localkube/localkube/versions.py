"""Pinned versions of everything built from the Go module proxy.

Each family is built from a wrapper module under `localkube/go/<family>/` whose
go.mod pins the same version; the binary cache is keyed by these strings.
"""

from __future__ import annotations

KUBERNETES = "v1.36.3"
ETCD = "v3.6.16"
MINIO = "v0.0.0-20260212201848-7aac2a2c5b7c"
HELM = "v3.22.0"
COREDNS = "v1.15.0"
# Our own pause program (localkube/go/pause): bump when its source changes.
PAUSE = "v1.0.0"
