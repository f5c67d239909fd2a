package fs

import (
	"bytes"
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
