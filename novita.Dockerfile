# Sandbox template with bucketfs, the s3fs replacement.
#
#   docker build -f novita.Dockerfile --build-arg COMMIT=$(git rev-parse --short HEAD) .
#   (or novita-sandbox-cli template build, which reads novita.Dockerfile)
#
# Inside the sandbox:
#   sudo bucketfs BUCKET /home/user/bucket -o allow_other,endpoint=REGION
#   sudo mount -t fuse.bucketfs BUCKET /home/user/bucket -o allow_other,endpoint=REGION
# See README.md, "In a Novita sandbox".

# ---- build: a static binary, by the same script CI and `make build` run.
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that source edits do not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context usually has no .git: pass these to name the build.
ARG VERSION=dev
ARG COMMIT=unknown
RUN VERSION="$VERSION" COMMIT="$COMMIT" bash scripts/build-static.sh /out/bucketfs

# ---- the template: Ubuntu with FUSE 3.
FROM ubuntu:22.04
# fuse3: fusermount3 (unmounting as a user) and /etc/fuse.conf;
# ca-certificates: TLS to S3, R2, GCS; sudo: the sandbox docs run
# "sudo bucketfs ..."; media-types: /etc/mime.types, where uploaded
# objects get their Content-Type from, as with s3fs.
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		fuse3 ca-certificates sudo media-types \
	&& rm -rf /var/lib/apt/lists/*
# Non-root mounts with -o allow_other need user_allow_other (root's do not).
RUN grep -q '^user_allow_other' /etc/fuse.conf || echo user_allow_other >> /etc/fuse.conf
COPY --from=build /out/bucketfs /usr/local/bin/bucketfs
# The mount helper: mount -t fuse.bucketfs and fstab lines run
# /sbin/mount.fuse.bucketfs, which is bucketfs reading mount's arguments.
RUN ln -sf /usr/local/bin/bucketfs /sbin/mount.fuse.bucketfs \
	&& bucketfs --version
