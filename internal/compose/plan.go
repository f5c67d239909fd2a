package compose

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

// Range is a byte range [Off, Off+Len) of the new object.
type Range struct{ Off, Len int64 }

func (r Range) end() int64 { return r.Off + r.Len }

// Base is the object an edit starts from.
type Base struct {
	Key  string
	ETag string // every read and copy of the base is pinned to it (If-Match)
	Size int64  // the base object's size
}

// Edit describes the new content of an object.
//
// Byte x of the new object (x < Size) is: Data's byte x if x is in a Dirty
// range; else the base's byte x if x < Base.Size; else zero. So a truncate
// below the base size followed by growth must mark the regrown range dirty
// (the staging file reads zeros there), or the base's old bytes would show.
type Edit struct {
	Key   string      // the object to write (may be Base.Key)
	Base  *Base       // nil: no base, every byte not dirty is zero
	Size  int64       // the new size
	Dirty []Range     // in any order, may overlap; clipped to Size
	Data  io.ReaderAt // the new bytes of the dirty ranges, at their offsets
	Opts  objstore.PutOptions
}

// Kind is how a plan writes the object.
type Kind int

const (
	// KindPut writes the whole object with one PUT.
	KindPut Kind = iota
	// KindCopy copies the base whole (only metadata changes).
	KindCopy
	// KindMultipart composes the object from copied and uploaded parts.
	KindMultipart
)

func (k Kind) String() string {
	switch k {
	case KindPut:
		return "put"
	case KindCopy:
		return "copy"
	default:
		return "multipart"
	}
}

// Source says where the bytes of a segment come from.
type Source int

const (
	FromData Source = iota // the edit's Data (dirty bytes)
	FromBase               // a ranged GET of the base
	FromZero               // zeros past the base's end
)

// Segment is a run of one part's bytes with one source, in object offsets.
type Segment struct {
	Range
	Src Source
}

// Part is one part of the plan. A copy part is an UploadPartCopy of the
// same range of the base; an upload part is sent from its Segments (for
// KindPut, the one part is the whole object).
type Part struct {
	Number int32
	Range
	Copy     bool
	Segments []Segment // upload parts only
	Fetches  []Range   // the ranged GETs of the base an upload part needs
}

// Plan is how an edit will be written and what it costs.
type Plan struct {
	Kind  Kind
	Parts []Part
	// Bytes sent to the store (request bodies), fetched from it (ranged
	// GETs of the base) and copied server-side.
	Send, Fetch, Copied int64
}

// fetchCoalesce: ranged GETs of the base for one part closer than this are
// merged into one request (fetching the dirty bytes between them too), so
// that scattered small writes do not cost a GET each.
const fetchCoalesce = 256 << 10

// maxSingleCopy is S3's limit for one CopyObject.
const maxSingleCopy = 5 << 30

// PlanEdit plans how to write e. It reads nothing and sends nothing.
func PlanEdit(e Edit, p Policy) (Plan, error) {
	p = p.withDefaults()
	if e.Size < 0 || e.Size > objstore.MaxObjectSize {
		return Plan{}, fmt.Errorf("compose: plan %q: size %d out of range", e.Key, e.Size)
	}
	var baseSize int64
	if e.Base != nil {
		if e.Base.Size < 0 {
			return Plan{}, fmt.Errorf("compose: plan %q: negative base size", e.Key)
		}
		baseSize = e.Base.Size
	}
	clean := min(baseSize, e.Size) // [0, clean) shows the base where not dirty
	dirty := normalize(e.Dirty, e.Size)
	if len(dirty) > 0 && e.Data == nil {
		return Plan{}, errors.New("compose: plan: dirty ranges without Data")
	}
	// What must be uploaded: the dirty bytes and everything past the base.
	up := dirty
	if clean < e.Size {
		up = normalize(append(slices.Clone(dirty), Range{clean, e.Size - clean}), e.Size)
	}

	var plan Plan
	switch {
	case len(up) == 0 && e.Base != nil && e.Size == baseSize && e.Size > 0 && e.Size <= maxSingleCopy:
		plan = Plan{Kind: KindCopy, Parts: []Part{{Number: 1, Range: Range{0, e.Size}, Copy: true}}}
	case e.Size <= p.SingleMax || clean == 0:
		if e.Size <= p.SingleMax {
			plan = Plan{Kind: KindPut, Parts: []Part{{Number: 1, Range: Range{0, e.Size}}}}
			break
		}
		plan = Plan{Kind: KindMultipart, Parts: layout([]Range{{0, e.Size}}, e.Size, p)}
	default:
		plan = Plan{Kind: KindMultipart, Parts: multipartLayout(up, e.Size, p)}
	}
	for i := range plan.Parts {
		pt := &plan.Parts[i]
		if pt.Copy {
			plan.Copied += pt.Len
			continue
		}
		pt.Segments = segments(pt.Range, dirty, clean)
		pt.Fetches = fetches(pt.Segments)
		plan.Send += pt.Len
		for _, f := range pt.Fetches {
			plan.Fetch += f.Len
		}
	}
	return plan, nil
}

// normalize sorts rs, clips them to [0, size) and merges overlapping or
// adjacent ranges.
func normalize(rs []Range, size int64) []Range {
	var out []Range
	for _, r := range rs {
		off, end := max(r.Off, 0), min(r.end(), size)
		if end > off {
			out = append(out, Range{off, end - off})
		}
	}
	slices.SortFunc(out, func(a, b Range) int { return cmp.Compare(a.Off, b.Off) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Off <= merged[n-1].end() {
			merged[n-1].Len = max(merged[n-1].end(), r.end()) - merged[n-1].Off
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// multipartLayout chooses the upload groups (ranges of the object to
// upload, each holding some of up) and the copied ranges between them,
// then cuts both into parts. A gap between groups, and the range before
// the first, must be at least MinPartSize to be copied (every part but the
// last has that minimum); smaller ones are uploaded with their group. A
// group below the minimum that is not the last part grows into a
// neighbouring gap. If that gives more than MaxParts parts, gaps are merged
// more eagerly until it fits.
func multipartLayout(up []Range, size int64, p Policy) []Part {
	for mergeGap := p.MinPartSize; ; mergeGap *= 2 {
		groups := chooseGroups(up, size, mergeGap, p.MinPartSize)
		parts := layout(groups, size, p)
		if len(parts) <= objstore.MaxParts || mergeGap >= size {
			return parts
		}
	}
}

// chooseGroups returns the upload groups: sorted, disjoint, separated by
// gaps of at least minPart, starting at 0 or at least minPart, each at
// least minPart long unless it ends at size.
func chooseGroups(up []Range, size, mergeGap, minPart int64) []Range {
	var gs []Range
	for _, r := range up {
		if n := len(gs); n > 0 && r.Off-gs[n-1].end() < mergeGap {
			gs[n-1].Len = r.end() - gs[n-1].Off
			continue
		}
		gs = append(gs, r)
	}
	if len(gs) > 0 && gs[0].Off < mergeGap {
		gs[0].Len += gs[0].Off
		gs[0].Off = 0
	}
	// fits reports whether a gap of rem bytes left between parts (or before
	// the first) can stand as copy parts.
	fits := func(rem int64) bool { return rem == 0 || rem >= minPart }
	out := make([]Range, 0, len(gs))
	for i := 0; i < len(gs); i++ {
		cur := gs[i]
		for cur.Len < minPart && cur.end() != size {
			need := minPart - cur.Len
			nextOff := size
			if i+1 < len(gs) {
				nextOff = gs[i+1].Off
			}
			prevEnd := int64(0)
			if len(out) > 0 {
				prevEnd = out[len(out)-1].end()
			}
			right, left := nextOff-cur.end(), cur.Off-prevEnd
			trailing := i == len(gs)-1
			switch {
			case right >= need && (trailing || fits(right-need)):
				cur.Len += need
			case left >= need && fits(left-need):
				cur.Off -= need
				cur.Len += need
			default:
				// Both gaps are short of minPart+need (< 2×minPart):
				// take the whole right one.
				cur.Len = nextOff - cur.Off
			}
			// Merge with the neighbours the group now touches.
			if i+1 < len(gs) && cur.end() >= gs[i+1].Off {
				cur.Len = gs[i+1].end() - cur.Off
				i++
			}
			if n := len(out); n > 0 && out[n-1].end() >= cur.Off {
				cur = Range{out[n-1].Off, cur.end() - out[n-1].Off}
				out = out[:n-1]
			}
		}
		out = append(out, cur)
	}
	return out
}

// layout cuts [0, size) into parts: the groups as upload parts, the rest as
// copy parts.
func layout(groups []Range, size int64, p Policy) []Part {
	upSize := p.PartSizeFor(size)
	copySize := max(p.CopyPartSize, upSize)
	var parts []Part
	add := func(r Range, copy bool, piece int64) {
		for _, c := range split(r, piece, p.MinPartSize) {
			parts = append(parts, Part{Number: int32(len(parts) + 1), Range: c, Copy: copy})
		}
	}
	at := int64(0)
	for _, g := range groups {
		if g.Off > at {
			add(Range{at, g.Off - at}, true, copySize)
		}
		add(g, false, upSize)
		at = g.end()
	}
	if at < size {
		add(Range{at, size - at}, true, copySize)
	}
	return parts
}

// split cuts r into pieces of piece bytes; a remainder below minPart joins
// the last piece, so every piece is at least minPart unless r is shorter.
func split(r Range, piece, minPart int64) []Range {
	var out []Range
	for off := r.Off; off < r.end(); {
		n := min(piece, r.end()-off)
		if rest := r.end() - off - n; rest > 0 && rest < minPart {
			n += rest
		}
		out = append(out, Range{off, n})
		off += n
	}
	return out
}

// segments returns the sources of the bytes of r.
func segments(r Range, dirty []Range, clean int64) []Segment {
	var segs []Segment
	addFill := func(off, end int64) { // bytes not dirty: base below clean, else zeros
		if off < min(end, clean) {
			segs = append(segs, Segment{Range{off, min(end, clean) - off}, FromBase})
		}
		if s := max(off, clean); s < end {
			segs = append(segs, Segment{Range{s, end - s}, FromZero})
		}
	}
	at := r.Off
	// dirty is sorted and disjoint: start at the first range ending after
	// r.Off, stop at the first starting at or after r's end.
	first, _ := slices.BinarySearchFunc(dirty, r.Off, func(d Range, x int64) int { return cmp.Compare(d.end(), x+1) })
	for _, d := range dirty[first:] {
		if d.Off >= r.end() {
			break
		}
		off, end := max(d.Off, r.Off), min(d.end(), r.end())
		addFill(at, off)
		segs = append(segs, Segment{Range{off, end - off}, FromData})
		at = end
	}
	addFill(at, r.end())
	return segs
}

// fetches returns the ranged GETs that cover the base segments of a part,
// merging those closer than fetchCoalesce.
func fetches(segs []Segment) []Range {
	var out []Range
	for _, s := range segs {
		if s.Src != FromBase {
			continue
		}
		if n := len(out); n > 0 && s.Off-out[n-1].end() < fetchCoalesce {
			out[n-1].Len = s.end() - out[n-1].Off
			continue
		}
		out = append(out, s.Range)
	}
	return out
}
