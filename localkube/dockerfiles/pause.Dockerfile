# The pod sandbox image (containerd's sandbox_image): our pause program from
# localkube/go/pause, built here since registry.k8s.io/pause cannot be pulled.
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
