package s3backend

import (
	"context"
	"encoding/xml"
	"strings"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Listings that carry each object's headers. S3 listings have no user
// metadata, so showing s3fs-style attributes (x-amz-meta-mode, -uid, -gid,
// -mtime) of listed objects costs one HEAD per entry. MinIO has an
// extension for this: a ListObjectsV2 with metadata=true answers with each
// object's user metadata and content type in a <UserMetadata> element
// (which decodeListPage reads; the SDK's decoder skips it), the headers a
// HEAD would have returned.
//
// The parameter is sent only to a store that said "Server: MinIO" in an
// earlier response: another store might refuse a parameter it does not
// know, or answer without the element, which costs nothing (its entries
// are HEADed as before). An object whose metadata the caller may not read
// comes without the element, and is HEADed too. Config.ListMetadata false
// turns it off.

// noteServer is an API option that records, from each response's Server
// header, whether the store is MinIO.
func (s *Store) noteServer(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("bucketfsNoteServer",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil && resp.Response != nil {
				if strings.HasPrefix(resp.Header.Get("Server"), "MinIO") {
					s.minio.Store(true)
				}
			}
			return out, md, err
		}), middleware.After)
}

// withListMetadata is an API option for one ListObjectsV2: it asks for
// metadata=true. The answer's body is kept by withListDecoder.
func withListMetadata(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("bucketfsListMetadata",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				q := req.URL.Query()
				q.Set("metadata", "true")
				req.URL.RawQuery = q.Encode()
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
}

// listedHeaders are the headers of the objects of one listing page that
// carried them, by key as listed (still encoded).
type listedHeaders map[string]objectHeaders

type objectHeaders struct {
	contentType string
	metadata    map[string]string // x-amz-meta-* without the prefix, lower-case names
}

// parseListedHeaders reads the <UserMetadata> of each <Contents> of a
// ListObjectsV2 answer, for a page decodeListPage refused and the SDK
// decoded. A page it cannot read gives none (its entries are HEADed).
func parseListedHeaders(body []byte) listedHeaders {
	var page struct {
		Contents []struct {
			Key          string
			UserMetadata *struct {
				Items []struct {
					XMLName xml.Name
					Value   string `xml:",chardata"`
				} `xml:",any"`
			}
		}
	}
	if err := xml.Unmarshal(body, &page); err != nil {
		return nil
	}
	out := make(listedHeaders, len(page.Contents))
	for _, c := range page.Contents {
		if c.UserMetadata == nil {
			continue
		}
		var h objectHeaders // metadata stays nil when there is none: listings are big
		for _, it := range c.UserMetadata.Items {
			name := strings.ToLower(it.XMLName.Local)
			switch {
			case name == "content-type":
				h.contentType = it.Value
			case strings.HasPrefix(name, "x-amz-meta-"):
				if h.metadata == nil {
					h.metadata = make(map[string]string, len(c.UserMetadata.Items))
				}
				h.metadata[strings.TrimPrefix(name, "x-amz-meta-")] = it.Value
			}
		}
		out[c.Key] = h
	}
	return out
}

// listsMetadata reports whether List asks for the objects' headers.
func (s *Store) listsMetadata() bool { return s.listMeta && s.minio.Load() }

type listHeadersKey struct{}

// WithListHeaders marks ctx so that a List under it asks for each object's
// headers where the store can give them (HeadersListed says which came).
// Only worth it when they will be used: on MinIO such a listing costs the
// store about three times a plain one.
func WithListHeaders(ctx context.Context) context.Context {
	return context.WithValue(ctx, listHeadersKey{}, true)
}

func wantsListHeaders(ctx context.Context) bool {
	v, _ := ctx.Value(listHeadersKey{}).(bool)
	return v
}
