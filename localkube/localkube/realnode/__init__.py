"""The local cluster's node: kubelet and kube-proxy built from the pinned Kubernetes release,
on Debian's containerd, runc and CNI plugins, with CoreDNS as the cluster DNS."""
