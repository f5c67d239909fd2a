// Package compose writes objects part by part so that only what changed
// is sent: an edit of an existing object (pwrite, append, truncate) becomes
// a multipart upload whose untouched ranges are UploadPartCopy parts of the
// base object and whose changed ranges are uploaded from local staging
// (Plan, Apply, Truncate); a sequential writer's parts are uploaded while it
// keeps writing (Stream). It depends only on objstore.ObjectStore.
package compose

import (
	"time"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

// Policy sets part sizes, concurrency and deadlines. The zero value is
// usable: every zero field takes its default.
type Policy struct {
	// PartSize is the size of uploaded parts (default 16 MiB, at least
	// MinPartSize). It grows for big objects so that MaxObjectSize fits in
	// objstore.MaxParts parts.
	PartSize int64
	// MinPartSize is the store's minimum size of every part but the last
	// (default objstore.MinPartSize). Only tests against memstore lower it.
	MinPartSize int64
	// CopyPartSize is the largest UploadPartCopy part (default 512 MiB):
	// copies are server-side, so big parts only save requests, but each
	// must finish within PartTimeout.
	CopyPartSize int64
	// SingleMax: objects up to this size are written with one PUT (default
	// PartSize).
	SingleMax int64
	// MaxInFlight bounds the part requests in flight (default 4).
	MaxInFlight int
	// PartTimeout is the deadline of each request (one part, one ranged
	// GET, create, complete), never of a whole upload (default 5 min).
	PartTimeout time.Duration
}

const mib = 1 << 20

func (p Policy) withDefaults() Policy {
	if p.MinPartSize <= 0 {
		p.MinPartSize = objstore.MinPartSize
	}
	if p.PartSize <= 0 {
		p.PartSize = 16 * mib
	}
	p.PartSize = min(max(p.PartSize, p.MinPartSize), objstore.MaxPartSize/2)
	if p.CopyPartSize <= 0 {
		p.CopyPartSize = 512 * mib
	}
	// Copy parts may absorb a remainder below MinPartSize; stay under the
	// store's part limit.
	p.CopyPartSize = min(max(p.CopyPartSize, p.PartSize), objstore.MaxPartSize-p.MinPartSize)
	if p.SingleMax <= 0 {
		p.SingleMax = p.PartSize
	}
	if p.MaxInFlight <= 0 {
		p.MaxInFlight = 4
	}
	if p.PartTimeout <= 0 {
		p.PartTimeout = 5 * time.Minute
	}
	return p
}

// PartSizeFor returns the size of uploaded parts for an object of total
// bytes whose size is known: PartSize, grown (to a whole MiB) if total
// would otherwise need more than objstore.MaxParts parts.
func (p Policy) PartSizeFor(total int64) int64 {
	p = p.withDefaults()
	return max(p.PartSize, roundUp(ceilDiv(total, objstore.MaxParts), mib))
}

// StreamPartSize returns the size part number (1-based) of a sequential
// upload of unknown total size should have. The size starts at PartSize and
// doubles every k parts (capped at objstore.MaxPartSize), k being the
// largest step for which objstore.MaxParts parts hold MaxObjectSize: small
// files get small parts, and 5 TiB still fits.
func (p Policy) StreamPartSize(number int32) int64 {
	p = p.withDefaults()
	step := growthStep(p.PartSize)
	return grownSize(p.PartSize, int64(number-1)/step)
}

// grownSize is base doubled g times, capped at the store's part limit.
func grownSize(base, g int64) int64 {
	if g >= 40 || base<<g > objstore.MaxPartSize {
		return objstore.MaxPartSize
	}
	return base << g
}

// growthStep returns the largest k such that parts of base bytes doubling
// every k parts hold objstore.MaxObjectSize in objstore.MaxParts parts.
func growthStep(base int64) int64 {
	capacity := func(k int64) int64 {
		var sum int64
		for g, left := int64(0), int64(objstore.MaxParts); left > 0; g++ {
			n := min(k, left)
			sum += n * grownSize(base, g)
			left -= n
		}
		return sum
	}
	// capacity falls as k grows: binary search for the last k that fits.
	lo, hi := int64(1), int64(objstore.MaxParts)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if capacity(mid) >= objstore.MaxObjectSize {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func roundUp(a, unit int64) int64 { return ceilDiv(a, unit) * unit }
