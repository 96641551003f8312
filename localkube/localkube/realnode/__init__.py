"""The real node: kubelet and kube-proxy built from the pinned Kubernetes release, on
Debian's containerd, runc and CNI plugins, with CoreDNS as the cluster DNS. It registers
next to the node agent, tainted, so that only Pods that ask for it run there."""
