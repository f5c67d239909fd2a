package fs

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The header s3fs's own test suite writes for {"key":"value"}.
const s3fsKeyValue = "%7B%22key%22%3A%22dmFsdWU%3D%22%7D"

func TestXattrEncodingMatchesS3fs(t *testing.T) {
	if got := encodeXattrs(map[string][]byte{"key": []byte("value")}); got != s3fsKeyValue {
		t.Fatalf("encode = %q, want %q", got, s3fsKeyValue)
	}
	m := decodeXattrs(s3fsKeyValue)
	if len(m) != 1 || string(m["key"]) != "value" {
		t.Fatalf("decode = %q", m)
	}
}

func TestXattrRoundTrip(t *testing.T) {
	in := map[string][]byte{
		"user.a":                {0, 1, 2, 0xff},
		"user.empty":            {},
		"user.sp ace:colon{}/%": []byte("x,y\"z"),
		aclAccess:               bytes.Repeat([]byte{2, 0, 0, 0}, 7),
	}
	out := decodeXattrs(encodeXattrs(in))
	if len(out) != len(in) {
		t.Fatalf("got %d attributes, want %d: %q", len(out), len(in), out)
	}
	for k, v := range in {
		if !bytes.Equal(out[k], v) {
			t.Errorf("%q = %q, want %q", k, out[k], v)
		}
	}
	if encodeXattrs(nil) != "" {
		t.Error("no attributes must drop the header")
	}
}

// A malformed pair (another tool's, or a broken escape) is skipped; the
// rest still reads, as in s3fs.
func TestXattrDecodeLenient(t *testing.T) {
	m := decodeXattrs(`{"user.ok":"b2s=","broken","user.raw":"cmF3"}%ZZ`)
	if string(m["user.ok"]) != "ok" || string(m["user.raw"]) != "raw" || len(m) != 2 {
		t.Fatalf("decode = %q", m)
	}
	for _, bad := range []string{"", "not json", "}{", "%7B"} {
		if m := decodeXattrs(bad); len(m) != 0 {
			t.Errorf("decode(%q) = %q, want nothing", bad, m)
		}
	}
}

func aclValue(entries ...[3]uint32) []byte {
	v := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		v = binary.LittleEndian.AppendUint16(v, uint16(e[0]))
		v = binary.LittleEndian.AppendUint16(v, uint16(e[1]))
		v = binary.LittleEndian.AppendUint32(v, e[2])
	}
	return v
}

// An access ACL sets the permission bits as the kernel would with
// FUSE_POSIX_ACL: the group bits come from the mask when there is one.
func TestACLPerm(t *testing.T) {
	const none = 0xffffffff
	minimal := aclValue([3]uint32{aclUserObj, 7, none}, [3]uint32{aclGroupObj, 5, none}, [3]uint32{aclOther, 1, none})
	if perm, min, ok := aclPerm(minimal); !ok || !min || perm != 0o751 {
		t.Errorf("minimal ACL: perm %#o minimal %v ok %v, want 0751 true true", perm, min, ok)
	}
	named := aclValue([3]uint32{aclUserObj, 6, none}, [3]uint32{aclUser, 7, 0}, [3]uint32{aclGroupObj, 4, none},
		[3]uint32{aclMask, 7, none}, [3]uint32{aclOther, 0, none})
	if perm, min, ok := aclPerm(named); !ok || min || perm != 0o670 {
		t.Errorf("ACL with a named user: perm %#o minimal %v ok %v, want 0670 false true", perm, min, ok)
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0}, minimal[:len(minimal)-1], aclValue([3]uint32{aclUserObj, 7, none})} {
		if _, _, ok := aclPerm(bad); ok {
			t.Errorf("aclPerm(%v) accepted", bad)
		}
	}
}
