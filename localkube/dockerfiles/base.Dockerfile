# The Python base of the project's images on machines with no container registry: a Debian
# root file system that debootstrap made from Debian's packages (minbase + python3,
# python3-venv, python-is-python3, ca-certificates), added to an empty image.
# localkube.images builds it; trainer, serving and operator build FROM it through their
# PYTHON_IMAGE argument (Docker users keep python:3.11.7-slim-bookworm).
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
CMD ["python3"]
