package fs

import (
	"os"
	"testing"
)

func TestStatusTgid(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		want         int32
	}{
		{"a thread of a process", "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4250\nPPid:\t17\n", 4242},
		{"a kernel thread", "Name:\tkworker/u8:3\nState:\tI (idle)\nTgid:\t311\nPid:\t311\nPPid:\t2\nKthread:\t1\n", 0},
		{"a kernel thread, older kernel", "Name:\tkworker/0:1\nTgid:\t12\nPid:\t12\nPPid:\t2\n", 0},
		{"no Tgid", "Name:\tx\nPid:\t5\n", 0},
		{"garbage", "Name:\tx\nTgid:\tabc\nPPid:\t1\n", 0},
	} {
		if got := statusTgid([]byte(tc.status)); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if !procIsOurs() {
		t.Error("procIsOurs: false in the test's own namespace")
	}
	// This very thread: its process.
	if got := tgidOf(uint32(os.Getpid())); got != int32(os.Getpid()) {
		t.Errorf("tgidOf(own pid) = %d, want %d", got, os.Getpid())
	}
}

func TestOwners(t *testing.T) {
	var o owners
	o.add(100, 10)
	o.add(101, 10)
	o.add(100, 10) // again: one entry
	if len(o.list) != 2 {
		t.Fatalf("%d owners, want 2", len(o.list))
	}
	still := []int32{10, 10}
	if o.excludes(10, still) {
		t.Error("the owner's own process was excluded")
	}
	if !o.excludes(20, still) {
		t.Error("a process that neither opened nor wrote was not excluded")
	}
	if o.excludes(0, still) {
		t.Error("an unknown process was excluded")
	}
	if o.excludes(20, []int32{10, 0}) || o.excludes(20, []int32{10, 30}) {
		t.Error("excluded although an owner's thread ended or moved to another process")
	}
	o.add(102, 0)
	if !o.lost || o.excludes(20, []int32{10, 10}) {
		t.Error("an owner that could not be told did not make every close upload")
	}
	var full owners
	for i := range maxOwners + 1 {
		full.add(uint32(200+i), int32(50+i))
	}
	if !full.lost {
		t.Error("more than maxOwners owners were not marked lost")
	}
}
