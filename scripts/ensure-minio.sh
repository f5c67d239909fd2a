#!/usr/bin/env bash
# ensure-minio.sh: make sure a MinIO server binary is available.
#
# Prints the path of the binary on stdout. Looks at $MINIO_BIN, then PATH,
# then $(go env GOPATH)/bin; if none is found, builds the pinned version with
# `go install` (takes a few minutes on a small machine).
set -euo pipefail

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

if [[ -n "${MINIO_BIN:-}" && -x "${MINIO_BIN}" ]]; then
	echo "${MINIO_BIN}"
	exit 0
fi
if p="$(command -v minio 2>/dev/null)"; then
	echo "$p"
	exit 0
fi
gobin="$(go env GOBIN)"
[[ -n "$gobin" ]] || gobin="$(go env GOPATH)/bin"
if [[ -x "$gobin/minio" ]]; then
	echo "$gobin/minio"
	exit 0
fi

echo "ensure-minio: building github.com/minio/minio@${MINIO_VERSION} (a few minutes)..." >&2
# Build outside any module so the repo's go.mod is untouched.
(cd / && GOFLAGS=-buildvcs=false go install "github.com/minio/minio@${MINIO_VERSION}") >&2
echo "$gobin/minio"
