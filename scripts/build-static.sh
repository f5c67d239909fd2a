#!/usr/bin/env bash
# Builds the static bucketfs binary that sandbox templates ship: the one
# build recipe shared by novita.Dockerfile, `make build` and CI.
#
#   scripts/build-static.sh [OUTPUT]        (default: bin/bucketfs)
#
# VERSION and COMMIT come from the environment when set (a Docker build
# context has no .git), else from git. The result is checked to be a
# static executable that reports them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-bin/bucketfs}"

version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
commit="${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"

# CGO_ENABLED=0: no libc, so the binary runs on any distribution a sandbox
# template is built from, and os/user and net use their pure-Go versions.
# -buildvcs=false: the commit is passed explicitly, and the VCS stamp would
# fail where .git is present but git is not.
CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=${version} -X main.commit=${commit}" \
	-o "$out" ./cmd/bucketfs

# A dynamic executable names its program interpreter (ld-linux*.so, or
# musl's) in the first page; a static one has none.
if head -c 4096 "$out" | LC_ALL=C grep -aqE 'ld-(linux|musl)'; then
	echo "build-static: $out is dynamically linked" >&2
	exit 1
fi
got="$("$out" --version)"
case "$got" in
*"$version"*"commit $commit"*) ;;
*)
	echo "build-static: $out --version says \"$got\", want version $version and commit $commit" >&2
	exit 1
	;;
esac
echo "build-static: $out: $got"
