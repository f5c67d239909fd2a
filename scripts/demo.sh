#!/usr/bin/env bash
# demo.sh: a local bucketfs demo. Starts MinIO on 127.0.0.1 with fixed demo
# credentials (data in .demo/ under the repo), creates the bucket "demo",
# builds bucketfs and mounts the bucket at .demo/mnt.
#
#   scripts/demo.sh         start (idempotent: re-running reports what runs)
#   scripts/demo.sh stop    unmount and stop MinIO
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$ROOT/.demo"
MNT="$DEMO/mnt"
BUCKET=demo
ACCESS_KEY=bucketfs-demo
SECRET_KEY=bucketfs-demo-secret
PORT="${DEMO_PORT:-}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

is_mounted() { awk -v m="$MNT" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# minio_pid prints the pid of our MinIO if it is running.
minio_pid() {
	[[ -f "$DEMO/minio.pid" ]] || return 1
	local pid
	pid="$(cat "$DEMO/minio.pid")"
	[[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$DEMO/data" || return 1
	echo "$pid"
}

as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

stop() {
	if is_mounted; then
		say "unmounting $MNT"
		fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || {
			echo "demo: $MNT is busy (a shell or program is using it); unmounting lazily"
			fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT"
		}
		# Give the daemon a moment to upload and exit.
		for _ in $(seq 1 50); do
			pgrep -f -- "--log-file $DEMO/bucketfs.log" >/dev/null 2>&1 || break
			sleep 0.2
		done
	else
		echo "demo: $MNT is not mounted"
	fi
	if pid="$(minio_pid)"; then
		say "stopping MinIO (pid $pid)"
		kill "$pid"
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
		rm -f "$DEMO/minio.pid"
	else
		echo "demo: MinIO is not running"
	fi
	echo "demo: stopped (data kept in $DEMO/data; rm -rf $DEMO to forget it)"
}

start() {
	mkdir -p "$DEMO/bin" "$DEMO/data" "$MNT"
	command -v go >/dev/null || die "Go is not installed (expected on PATH)"

	if ! command -v fusermount3 >/dev/null; then
		say "installing fuse3"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3
	fi
	[[ -e /dev/fuse ]] || die "/dev/fuse is missing: this machine cannot mount FUSE filesystems"

	say "looking for MinIO (building the pinned version if needed; a few minutes the first time)"
	MINIO_BIN="$(bash "$ROOT/scripts/ensure-minio.sh")"

	if [[ -z "$PORT" && -f "$DEMO/port" ]]; then PORT="$(cat "$DEMO/port")"; fi
	if pid="$(minio_pid)"; then
		say "MinIO already running (pid $pid) on 127.0.0.1:$PORT"
	else
		if [[ -z "$PORT" ]]; then
			PORT=9000
			while port_open "$PORT" || port_open "$((PORT + 1))"; do PORT=$((PORT + 2)); done
		elif port_open "$PORT"; then
			die "port $PORT is in use by another program; set DEMO_PORT to a free port"
		fi
		echo "$PORT" >"$DEMO/port"
		say "starting MinIO on 127.0.0.1:$PORT (log $DEMO/minio.log)"
		MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" MINIO_BROWSER=off MINIO_UPDATE=off \
			setsid "$MINIO_BIN" server --quiet --address "127.0.0.1:$PORT" --console-address "127.0.0.1:$((PORT + 1))" \
			"$DEMO/data" >>"$DEMO/minio.log" 2>&1 </dev/null &
		echo $! >"$DEMO/minio.pid"
	fi
	ENDPOINT="http://127.0.0.1:$PORT"

	say "building bucketfs and the demo helper"
	make -C "$ROOT" --no-print-directory build >/dev/null
	(cd "$ROOT" && go build -o "$DEMO/bin/mkbucket" ./test/tools/mkbucket)

	say "creating bucket $BUCKET"
	AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" \
		"$DEMO/bin/mkbucket" -endpoint "$ENDPOINT" -bucket "$BUCKET" -wait 60s

	if is_mounted; then
		say "$MNT is already mounted"
	else
		say "mounting $BUCKET at $MNT"
		AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" \
			"$ROOT/bin/bucketfs" --endpoint "$ENDPOINT" --stat-cache-ttl 5s \
			--log-file "$DEMO/bucketfs.log" "$BUCKET" "$MNT"
	fi

	rel="${MNT#"$PWD"/}"
	cat <<MSG

bucketfs demo is running: bucket "$BUCKET" on MinIO at $ENDPOINT is mounted at $MNT
(credentials: $ACCESS_KEY / $SECRET_KEY; bucketfs log: $DEMO/bucketfs.log)

Try:
  ls -la $rel
  echo hi > $rel/hello.txt && cat $rel/hello.txt
  mkdir -p $rel/docs && cp README* $rel/docs/ 2>/dev/null; ls -l $rel/docs
  dd if=/dev/urandom of=$rel/big.bin bs=1M count=50 && ls -lh $rel/big.bin
  ln -s hello.txt $rel/link && readlink $rel/link
  stat $rel/hello.txt
  df -h $rel

Everything lives in the bucket: after  make demo-stop && make demo  the files are still there.

Stop it with:  make demo-stop   (unmounts, uploading anything unsaved, and stops MinIO)
MSG
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) die "usage: $0 [start|stop]" ;;
esac
