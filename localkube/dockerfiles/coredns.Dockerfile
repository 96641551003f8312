# The cluster DNS: CoreDNS built from the pinned module in localkube/go/coredns.
FROM scratch
COPY coredns /coredns
USER 65532:65532
EXPOSE 1053 1053/udp
ENTRYPOINT ["/coredns"]
