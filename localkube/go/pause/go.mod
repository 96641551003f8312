// The pod sandbox's pause process, built here because no image can be pulled from
// registry.k8s.io: it holds the pod's namespaces and waits for SIGTERM/SIGINT, as
// Kubernetes' own pause (build/pause/linux/pause.c) does, and reaps orphaned children.
module mlcycle.dev/localkube/pause

go 1.26.0
