# MinIO, for the Helm chart's S3 on machines with no container registry: the server built
# from the pinned module in localkube/go/minio. Like quay.io/minio/minio, its entrypoint
# runs `minio` with the Pod's arguments.
FROM scratch
COPY minio /usr/bin/minio
USER 10001:10001
EXPOSE 9000
ENTRYPOINT ["/usr/bin/minio"]
