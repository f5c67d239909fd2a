package fs

import (
	"testing"
	"unsafe"
)

// TestNodeFitsItsSizeClass keeps Node within 576 bytes, one of the Go
// allocator's size classes: a 100,000-entry directory is 100,000 nodes,
// and one more field past it moves every node into the 640-byte class
// (6 MiB more for such a directory, 9 with the collector's headroom). A
// field that is worth it may raise the bound; put flags with the flags at
// the end of the struct, where they cost no padding.
func TestNodeFitsItsSizeClass(t *testing.T) {
	if got := unsafe.Sizeof(Node{}); got > 576 {
		t.Fatalf("Node is %d bytes, past the 576-byte size class", got)
	}
}
