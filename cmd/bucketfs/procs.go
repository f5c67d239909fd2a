package main

import (
	"os"
	"runtime"
)

// raiseProcs gives the Go scheduler twice as many Ps as the CPUs it was
// allowed (runtime.GOMAXPROCS(0) already follows a cgroup's CPU limit),
// unless GOMAXPROCS is set, which is then the user's choice.
//
// Why: the daemon's goroutines spend their lives in blocking system calls
// (reading /dev/fuse, writing replies, pread of cached blocks), and a
// goroutine coming back from one needs a free P to go on. With as many Ps
// as CPUs, a FUSE reply often waited for one behind another goroutine,
// which cost a sleep and a wake-up of its thread: an O_DIRECT reader
// (fio --direct=1, one job) made 2.4 context switches per 4 KiB read in
// the daemon against s3fs's 1.7.
//
// Called after the mount: go-fuse sizes its pool of /dev/fuse readers from
// GOMAXPROCS when its server is made, and that pool is best one per CPU.
func raiseProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
}
