"""A real local Kubernetes without a container engine.

The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) is
built from the Go module proxy at pinned versions and runs as local processes; the
node agent in `localkube.node` runs each Pod as processes in its own network and
mount namespaces.
"""
