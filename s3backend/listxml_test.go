package s3backend

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

// cannedLister is a Store whose store answers every request with body,
// and a twin of it that decodes listings with the SDK alone.
type cannedLister struct {
	srv       *httptest.Server
	body      atomic.Value // string
	fast, sdk *Store
}

func newCannedLister(t testing.TB) *cannedLister {
	c := &cannedLister{}
	c.body.Store("")
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "MinIO")
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(c.body.Load().(string)))
	}))
	t.Cleanup(c.srv.Close)
	mk := func(sdk bool) *Store {
		st, err := New(context.Background(), Config{Bucket: "b", Endpoint: c.srv.URL, PathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
		if err != nil {
			t.Fatal(err)
		}
		st.sdkListDecoder = sdk
		st.minio.Store(true)
		return st
	}
	c.fast, c.sdk = mk(false), mk(true)
	return c
}

// both lists with each decoder; it reports whether the fast one read the
// body itself.
func (c *cannedLister) both(t testing.TB, body string) (fast, sdk ListResult, fastErr, sdkErr error, decoded bool) {
	c.body.Store(body)
	ctx := WithListHeaders(context.Background())
	fast, fastErr = c.fast.List(ctx, "", "/", "", 0)
	sdk, sdkErr = c.sdk.List(ctx, "", "/", "", 0)
	_, err := decodeListPage([]byte(body))
	return fast, sdk, fastErr, sdkErr, err == nil
}

const listHead = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
	`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>`

// TestListDecoderMatchesSDK: every page decodeListPage reads gives what
// the SDK's decoder (with parseListedHeaders) gives, and a page it refuses
// still lists, through the SDK.
func TestListDecoderMatchesSDK(t *testing.T) {
	c := newCannedLister(t)
	cases := []struct {
		name, body string
		decoded    bool // decodeListPage reads it
	}{
		{"minio with metadata", listHead + `<NextContinuationToken>dG9rZW4=</NextContinuationToken><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>` +
			`<Contents><Key>sp+ec/a%26b%3Cc%3E%22q%27%2B%25.txt</Key><LastModified>2026-12-07T01:37:29.435Z</LastModified><ETag>&#34;9dd4e461268c8034f5c8564e155c67a6&#34;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass>` +
			`<UserMetadata><X-Amz-Meta-Uid>0</X-Amz-Meta-Uid><X-Amz-Meta-Mode>33188</X-Amz-Meta-Mode><content-type>binary/octet-stream</content-type></UserMetadata><Internal><K>1</K><M>0</M></Internal></Contents>` +
			`<Contents><Key>plain</Key><LastModified>2026-01-02T03:04:05Z</LastModified><ETag>"abc-2"</ETag><Size>123456789012</Size><StorageClass>STANDARD</StorageClass></Contents>` +
			`<CommonPrefixes><Prefix>dir%2B/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>z+z/</Prefix></CommonPrefixes><EncodingType>url</EncodingType></ListBucketResult>`, true},
		{"entities without url encoding", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>a&amp;b&lt;c&gt;&quot;d&apos;e&#39;f&#x263A;g+h%i</Key><ETag>&quot;x&quot;</ETag><Size>0</Size></Contents></ListBucketResult>`, true},
		{"pretty printed, with owner and checksum", listHead + "\n  <IsTruncated>false</IsTruncated>\n  <Contents>\n    <Key>k1</Key>\n    <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n" +
			"    <ETag>\"fba9dede5f27731c9771645a39863328\"</ETag>\n    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\n    <Size>434234</Size>\n" +
			"    <Owner>\n      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>\n      <DisplayName>mtd@amazon.com</DisplayName>\n    </Owner>\n" +
			"    <RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus>\n    <StorageClass>STANDARD</StorageClass>\n  </Contents>\n</ListBucketResult>\n", true},
		{"self-closing, comment, CDATA, CRLF", listHead + `<!-- a comment --><Delimiter/><IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1</NextContinuationToken>` +
			"<Contents><Key><![CDATA[a<b>&c]]></Key><Size>5</Size><ETag/></Contents><Contents><Key>line\r\nend\rx</Key><Size>1</Size></Contents>" +
			`<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><CommonPrefixes/></ListBucketResult>`, true},
		{"a value in two pieces is left to the SDK", listHead + `<IsTruncated>false</IsTruncated><Contents><Key><![CDATA[a]]>b</Key><Size>1</Size></Contents></ListBucketResult>`, false},
		{"a value with a child is left to the SDK", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>a<x/></Key><Size>1</Size></Contents></ListBucketResult>`, false},
		{"empty listing", listHead + `<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>`, true},
		{"no prolog, attributes", `<ListBucketResult a="1>" b='x'><IsTruncated >false</IsTruncated ><Contents ><Key a="/">k</Key><Size>7</Size></Contents></ListBucketResult>`, true},
		{"metadata with an empty value", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size><UserMetadata><X-Amz-Meta-Xattr></X-Amz-Meta-Xattr></UserMetadata></Contents><Contents><Key>m</Key><Size>1</Size><UserMetadata></UserMetadata></Contents></ListBucketResult>`, true},
		{"a doctype is refused", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "v">]><ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>`, false},
		{"an unknown entity is refused", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>a&nbsp;b</Key><Size>1</Size></Contents></ListBucketResult>`, false},
		{"a bad size is refused", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1x</Size></Contents></ListBucketResult>`, false},
		{"mismatched tags are refused", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>k</Size></Contents></ListBucketResult>`, false},
		{"a truncated body is refused", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>k</Key>`, false},
		{"another root is refused", `<Other><Contents><Key>k</Key></Contents></Other>`, false},
		{"a bad url encoding", listHead + `<IsTruncated>false</IsTruncated><Contents><Key>a%zz</Key><Size>1</Size></Contents><EncodingType>url</EncodingType></ListBucketResult>`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fast, sdk, fastErr, sdkErr, decoded := c.both(t, tc.body)
			if decoded != tc.decoded {
				t.Errorf("decodeListPage read it: %v, want %v", decoded, tc.decoded)
			}
			if (fastErr == nil) != (sdkErr == nil) {
				t.Fatalf("errors differ: decoder %v, SDK %v", fastErr, sdkErr)
			}
			if !reflect.DeepEqual(fast, sdk) {
				t.Errorf("decoder:\n%+v\nSDK:\n%+v", fast, sdk)
			}
		})
	}
	// The first case, checked by hand as well, so that the two cannot
	// agree on a wrong answer.
	fast, _, err, _, _ := c.both(t, cases[0].body)
	if err != nil {
		t.Fatal(err)
	}
	o := fast.Objects[0]
	if o.Key != `sp ec/a&b<c>"q'+%.txt` || o.Size != 1 || o.ETag != `"9dd4e461268c8034f5c8564e155c67a6"` ||
		o.LastModified.UnixMilli() != 1796607449435 || !o.HeadersListed || o.ContentType != "binary/octet-stream" ||
		!reflect.DeepEqual(o.Metadata, map[string]string{"uid": "0", "mode": "33188"}) {
		t.Errorf("first object: %+v", o)
	}
	if fast.Objects[1].HeadersListed || fast.Objects[1].Size != 123456789012 {
		t.Errorf("second object: %+v", fast.Objects[1])
	}
	if strings.Join(fast.CommonPrefixes, " ") != "dir+/ z z/" || fast.NextToken != "dG9rZW4=" {
		t.Errorf("prefixes %q, token %q", fast.CommonPrefixes, fast.NextToken)
	}
	// Headers a listing carries unasked count for nothing, as on the
	// SDK's path.
	plain, err := c.fast.List(context.Background(), "", "/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if o := plain.Objects[0]; o.HeadersListed || o.Metadata != nil || o.ContentType != "" {
		t.Errorf("headers listed unasked: %+v", o)
	}
}

// FuzzListDecoder: whatever the body, a page both decoders read is the
// same page. (A body decodeListPage refuses goes to the SDK; one it reads
// and the SDK refuses, a malformed attribute say, lists where the SDK
// would fail.)
func FuzzListDecoder(f *testing.F) {
	f.Add(listHead + `<IsTruncated>true</IsTruncated><NextContinuationToken>x</NextContinuationToken><Contents><Key>a&amp;b</Key><ETag>&#34;e&#34;</ETag><Size>3</Size><LastModified>2026-12-07T01:37:29.435Z</LastModified><UserMetadata><X-Amz-Meta-Mode>1</X-Amz-Meta-Mode></UserMetadata></Contents><CommonPrefixes><Prefix>p%2F/</Prefix></CommonPrefixes><EncodingType>url</EncodingType></ListBucketResult>`)
	f.Add(`<ListBucketResult><Contents><Key><![CDATA[x]]></Key></Contents><!-- c --></ListBucketResult>`)
	c := newCannedLister(f)
	f.Fuzz(func(t *testing.T, body string) {
		if _, err := decodeListPage([]byte(body)); err != nil {
			return // the SDK reads it, whatever it makes of it
		}
		fast, sdk, fastErr, sdkErr, _ := c.both(t, body)
		if fastErr != nil || sdkErr != nil {
			return
		}
		if !reflect.DeepEqual(fast, sdk) {
			t.Errorf("decoder:\n%+v\nSDK:\n%+v", fast, sdk)
		}
	})
}

// BenchmarkListDecode: one page of a thousand keys, as MinIO sends it,
// through each decoder.
func BenchmarkListDecode(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(listHead + `<NextContinuationToken>dG9rZW4=</NextContinuationToken><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>`)
	for i := range 1000 {
		sb.WriteString(`<Contents><Key>` + fmt.Sprintf("flat/f%06d", i) + `</Key><LastModified>2026-12-07T01:37:29.435Z</LastModified><ETag>&#34;d41d8cd98f00b204e9800998ecf8427e&#34;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>`)
	}
	sb.WriteString(`<EncodingType>url</EncodingType></ListBucketResult>`)
	c := newCannedLister(b)
	c.body.Store(sb.String())
	for _, tc := range []struct {
		name string
		st   *Store
	}{{"decoder", c.fast}, {"sdk", c.sdk}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := tc.st.List(context.Background(), "flat/", "/", "", 0)
				if err != nil || len(res.Objects) != 1000 {
					b.Fatal(len(res.Objects), err)
				}
			}
		})
	}
}
