package fs

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

// TestTreeBuilderMatchesDelimitedListings: a walk's keys, cut into pages
// anywhere, give each directory the entries a delimited listing of it
// gives (key order, a directory winning over a same-named object, names
// no kernel can show left out), and its subdirectories' markers.
func TestTreeBuilderMatchesDelimitedListings(t *testing.T) {
	keys := []string{
		"w/a",      // shadowed by the directory a/
		"w/a-b",    // sorts before a/
		"w/a/",     // a's marker
		"w/a/x",    //
		"w/a/y/z",  // y: no marker
		"w/a//odd", // a component no kernel can show
		"w/b/c",
		"w/c.txt",
	}
	want := map[string]string{
		"w":     "a-b:f a:d+ b:d- c.txt:f",
		"w/a":   "x:f y:d-",
		"w/a/y": "z:f",
		"w/b":   "c:f",
	}
	for cut := 1; cut <= len(keys); cut++ {
		w := &treeWalk{root: "w", prefix: "w/"}
		b := newTreeBuilder(w, true)
		got := map[string]string{}
		var facts []markerFact
		keep := func(done []keyedListing) {
			for _, kl := range done {
				var parts []string
				for _, p := range kl.tl.entries {
					s := p.name + ":f"
					if p.ent.kind == kindDir {
						switch {
						case !p.ent.hasMeta:
							s = p.name + ":d+" // a marker, headers unknown
						case p.ent.marker:
							s = p.name + ":d+h"
						default:
							s = p.name + ":d-"
						}
					}
					parts = append(parts, s)
				}
				got[kl.key] = strings.Join(parts, " ")
			}
		}
		for i := 0; i < len(keys); i += cut {
			var objs []s3backend.ObjectInfo
			for _, k := range keys[i:min(i+cut, len(keys))] {
				objs = append(objs, s3backend.ObjectInfo{Key: k, ETag: "e" + k})
			}
			done, f := b.add(objs, time.Now())
			keep(done)
			facts = append(facts, f...)
		}
		keep(b.closeAll())
		for k, v := range want {
			if got[k] != v {
				t.Errorf("pages of %d keys: %s: %q, want %q", cut, k, got[k], v)
			}
		}
		if fmt.Sprint(len(facts)) != "2" || facts[0].name != "a" || !facts[0].present || facts[1].name != "b" || facts[1].present {
			t.Errorf("pages of %d keys: root's marker facts %+v, want a present, b absent", cut, facts)
		}
	}
}
