package fs

import (
	"testing"

	"github.com/novitalabs/bucketfs/s3backend"
)

// TestAbsentFrom: a listing of prefix key with the delimiter proves key
// absent only if it shows neither key nor key/, and reaches past key/.
func TestAbsentFrom(t *testing.T) {
	objs := func(keys ...string) []s3backend.ObjectInfo {
		var o []s3backend.ObjectInfo
		for _, k := range keys {
			o = append(o, s3backend.ObjectInfo{Key: k})
		}
		return o
	}
	for _, c := range []struct {
		name string
		page s3backend.ListResult
		want bool
	}{
		{"empty page", s3backend.ListResult{}, true},
		{"the object", s3backend.ListResult{Objects: objs("d/a")}, false},
		{"a directory below", s3backend.ListResult{CommonPrefixes: []string{"d/a/"}}, false},
		{"a store ignoring the delimiter", s3backend.ListResult{Objects: objs("d/a/x")}, false},
		{"only longer names", s3backend.ListResult{Objects: objs("d/a.c", "d/ab"), CommonPrefixes: []string{"d/a-old/"}}, true},
		{"cut before a/", s3backend.ListResult{Objects: objs("d/a.c", "d/a.h"), NextToken: "t"}, false},
		{"cut past a/", s3backend.ListResult{Objects: objs("d/a.c", "d/ab"), NextToken: "t"}, true},
		{"cut past a/ by a prefix", s3backend.ListResult{Objects: objs("d/a.c"), CommonPrefixes: []string{"d/a0/"}, NextToken: "t"}, true},
	} {
		if got := absentFrom(c.page, "d/a"); got != c.want {
			t.Errorf("%s: absentFrom = %v, want %v", c.name, got, c.want)
		}
	}
}
