#!/usr/bin/env bash
# bench/run.sh: the one command behind `make bench`.
#
# Installs the peers from Debian's packages (s3fs, rclone, fio, fuse3) if
# missing, makes sure a MinIO binary exists, builds bucketfs and the runner,
# then runs bench/cmd/benchrun, which does the rest and writes
# bench/results/<date>/{results.json,table.md}. Arguments go to the runner:
#
#   bash bench/run.sh                                  # full run (~25 min)
#   bash bench/run.sh --size 64MiB --runs 1 --fio-runtime 5s \
#       --flat-objects 1000 --tree-objects 500 --dev-files 300   # smoke run
#   bash bench/run.sh --tools bucketfs,sdk --workloads seqread,write
#   BUCKETFS_REV=HEAD bash bench/run.sh      # bucketfs as committed
#
# Needs root (FUSE mounts, dropping the page cache). Measures, never fails
# on a slow figure: a non-zero exit means the harness itself broke.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

log() { echo "bench: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
	log "must run as root (FUSE mounts, drop_caches)"
	exit 2
fi

need=()
command -v s3fs >/dev/null || need+=(s3fs)
command -v rclone >/dev/null || need+=(rclone)
command -v fio >/dev/null || need+=(fio)
command -v fusermount3 >/dev/null || need+=(fuse3)
if ((${#need[@]})); then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 300 apt-get update -qq
	timeout 600 apt-get install -y -qq "${need[@]}" >/dev/null
fi

MINIO=$(command -v minio || true)
if [[ -z $MINIO ]]; then
	MINIO="$(go env GOPATH | cut -d: -f1)/bin/minio"
	if [[ ! -x $MINIO ]]; then
		log "installing minio $MINIO_VERSION (go install, a few minutes)"
		(cd /tmp && GOFLAGS= timeout 900 go install "github.com/minio/minio@$MINIO_VERSION")
	fi
fi

mkdir -p bench/.bin
rm -f bench/.bin/bucketfs
# BUCKETFS_REV=HEAD (or any commit) measures that commit as committed,
# without the work tree's uncommitted changes; the default is the work tree.
if [[ -n ${BUCKETFS_REV:-} ]]; then
	src=$(mktemp -d)
	git archive "$BUCKETFS_REV" | tar -x -C "$src"
	version="git $(git describe --always "$BUCKETFS_REV")"
	log "building bucketfs at $version"
	if ! (cd "$src" && timeout 600 go build -o "$OLDPWD/bench/.bin/bucketfs" ./cmd/bucketfs); then
		log "bucketfs does not build: its cells will read 'fail'"
	fi
	rm -rf "$src"
else
	version="git $(git describe --always --dirty 2>/dev/null || echo unknown) (work tree)"
	log "building bucketfs from the work tree"
	if ! timeout 600 go build -o bench/.bin/bucketfs ./cmd/bucketfs; then
		log "bucketfs does not build: its cells will read 'fail'"
	fi
fi
log "building the runner"
timeout 600 go build -o bench/.bin/benchrun ./bench/cmd/benchrun

exec bench/.bin/benchrun --minio "$MINIO" --bucketfs bench/.bin/bucketfs --bucketfs-version "$version" "$@"
