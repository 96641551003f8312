"""A real local Kubernetes, built from source.

The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) is
built from the Go module proxy at pinned versions and runs as local processes; its node
(`localkube.realnode`) is a kubelet and kube-proxy on containerd and runc, running the
images `localkube.images` builds from the project's Dockerfiles.
"""
