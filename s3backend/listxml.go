package s3backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/smithy-go/middleware"
	smithytime "github.com/aws/smithy-go/time"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// A decoder for ListObjectsV2 answers. Listings are most of what find,
// du, ls -l and a tree walk cost the daemon: the SDK decodes a page
// through encoding/xml, a token and a few allocations per element, and a
// thousand-key page costs several milliseconds of CPU and as many of
// garbage collection, while the store took about as long to answer it.
// This decoder reads the one document shape a listing has, in one pass
// over the body, allocating only the strings it keeps, and reads MinIO's
// <UserMetadata> in the same pass (the SDK's decoder skips it, so it was a
// second parse).
//
// It stays strict: anything it does not expect (a DOCTYPE, a malformed
// tag, an unknown entity, a value that does not parse) is an error, and
// the page goes to the SDK's decoder as before. It is only ever a faster
// path to the same result; TestListDecoderMatchesSDK holds it to that.

// listPage is one ListObjectsV2 answer, keys and prefixes as sent (still
// URL-encoded when encodingURL).
type listPage struct {
	encodingURL bool
	truncated   bool
	nextToken   string
	objects     []listedObject
	prefixes    []string
}

type listedObject struct {
	key          string
	size         int64
	etag         string
	lastModified time.Time
	headers      *objectHeaders // MinIO's <UserMetadata>; nil when absent
}

var errListXML = errors.New("listing answer is not a ListBucketResult this decoder reads")

// decodeListPage reads a ListObjectsV2 answer.
func decodeListPage(body []byte) (*listPage, error) {
	d := listDecoder{sc: xmlScanner{b: body}, page: &listPage{}}
	if err := d.run(); err != nil {
		return nil, err
	}
	return d.page, nil
}

// listDecoder walks the elements of a ListBucketResult. Only the path
// matters: ListBucketResult/{IsTruncated,NextContinuationToken,
// EncodingType}, ListBucketResult/Contents/{Key,Size,ETag,LastModified,
// UserMetadata/*} and ListBucketResult/CommonPrefixes/Prefix; any other
// element is skipped with everything in it.
type listDecoder struct {
	sc   xmlScanner
	page *listPage
	// path holds the names of the open elements (slices of the body);
	// only the first maxPath are kept, deeper ones are only counted.
	path  [maxPath][]byte
	depth int
	text  []byte // the decoded text of the innermost element so far
	// segments counts the text tokens of the innermost element so far,
	// and parent is set once a child element was in it: the SDK's
	// decoder takes a value that is one text token and nothing else, and
	// so does this one (text split by a comment or a CDATA section is
	// left to the SDK).
	segments int
	parent   bool
	// interned holds the strings that repeat from object to object of a
	// page (content types, metadata names, short values such as modes
	// and owners): a big directory's listing is held as long as it is
	// cached, one copy of each is enough.
	interned map[string]string
	lower    []byte // scratch for a lower-cased name
}

// intern returns b as a string, one copy per page.
func (d *listDecoder) intern(b []byte) string {
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	if d.interned == nil {
		d.interned = make(map[string]string)
	}
	s := string(b)
	d.interned[s] = s
	return s
}

const maxPath = 5

func (d *listDecoder) run() error {
	for {
		tok, err := d.sc.next()
		if err != nil {
			return err
		}
		switch tok.kind {
		case tokEOF:
			if d.depth != 0 || !d.sc.sawRoot {
				return fmt.Errorf("%w: ends inside an element", errListXML)
			}
			return nil
		case tokText:
			if d.depth == 0 {
				if len(bytes.TrimLeft(tok.data, " \t\r\n")) != 0 {
					return fmt.Errorf("%w: text outside the root", errListXML)
				}
				continue
			}
			d.segments++
			if tok.cdata {
				d.text = append(d.text, tok.data...)
			} else if d.text, err = appendUnescaped(d.text, tok.data); err != nil {
				return err
			}
		case tokStart:
			if err := d.start(tok.data); err != nil {
				return err
			}
			if tok.selfClose {
				if err := d.end(tok.data); err != nil {
					return err
				}
			}
		case tokEnd:
			if err := d.end(tok.data); err != nil {
				return err
			}
		}
	}
}

func (d *listDecoder) start(name []byte) error {
	if oddlyCased(name) {
		return fmt.Errorf("%w: <%s>", errListXML, name)
	}
	if d.depth == 0 {
		if d.sc.sawRoot {
			return fmt.Errorf("%w: a second root element", errListXML)
		}
		if string(name) != "ListBucketResult" {
			return fmt.Errorf("%w: root <%s>", errListXML, name)
		}
		d.sc.sawRoot = true
	}
	if d.depth < maxPath {
		d.path[d.depth] = name
	}
	d.depth++
	d.text, d.segments, d.parent = d.text[:0], 0, false
	if d.depth == 2 && string(name) == "Contents" {
		d.page.objects = append(d.page.objects, listedObject{})
	}
	if d.depth == 2 && string(name) == "CommonPrefixes" {
		// An element without a Prefix is an empty one, as the SDK has it.
		d.page.prefixes = append(d.page.prefixes, "")
	}
	if d.depth == 3 && string(d.path[1]) == "Contents" && string(name) == "UserMetadata" {
		d.page.objects[len(d.page.objects)-1].headers = &objectHeaders{}
	}
	return nil
}

func (d *listDecoder) end(name []byte) error {
	if d.depth == 0 {
		return fmt.Errorf("%w: </%s> closes nothing", errListXML, name)
	}
	if d.depth <= maxPath && !bytes.Equal(d.path[d.depth-1], name) {
		return fmt.Errorf("%w: </%s> closes <%s>", errListXML, name, d.path[d.depth-1])
	}
	err := d.value(name)
	d.depth--
	// The element that is innermost again has had a child.
	d.text, d.segments, d.parent = d.text[:0], 0, true
	return err
}

// leaf is the text of the element that ended, as a value: one text
// token, or none, and no child element.
func (d *listDecoder) leaf(name []byte) ([]byte, error) {
	if d.segments > 1 || d.parent {
		return nil, fmt.Errorf("%w: <%s> is not a plain value", errListXML, name)
	}
	return d.text, nil
}

// The elements whose text the page keeps, by path.
type listField int

const (
	fieldNone   listField = iota
	fieldPage             // ListBucketResult/{IsTruncated,NextContinuationToken,EncodingType}
	fieldObject           // ListBucketResult/Contents/{Key,ETag,Size,LastModified}
	fieldPrefix           // ListBucketResult/CommonPrefixes/Prefix
	fieldHeader           // ListBucketResult/Contents/UserMetadata/*
)

// field is what the element name that just ended is to the page.
func (d *listDecoder) field(name []byte) listField {
	switch {
	case d.depth == 2:
		switch string(name) {
		case "IsTruncated", "NextContinuationToken", "EncodingType":
			return fieldPage
		}
	case d.depth == 3 && string(d.path[1]) == "Contents":
		switch string(name) {
		case "Key", "ETag", "Size", "LastModified":
			return fieldObject
		}
	case d.depth == 3 && string(d.path[1]) == "CommonPrefixes" && string(name) == "Prefix":
		return fieldPrefix
	case d.depth == 4 && string(d.path[1]) == "Contents" && string(d.path[2]) == "UserMetadata":
		return fieldHeader
	}
	return fieldNone
}

// value takes the text of the element name that just ended, if its path
// is one the page needs.
func (d *listDecoder) value(name []byte) error {
	f := d.field(name)
	if f == fieldNone {
		return nil
	}
	v, err := d.leaf(name)
	if err != nil {
		return err
	}
	switch f {
	case fieldPage:
		switch string(name) {
		case "IsTruncated":
			b, err := strconv.ParseBool(string(v))
			if err != nil {
				return fmt.Errorf("%w: IsTruncated %q", errListXML, v)
			}
			d.page.truncated = b
		case "NextContinuationToken":
			d.page.nextToken = string(v)
		case "EncodingType":
			d.page.encodingURL = string(v) == "url"
		}
	case fieldObject:
		return d.objectField(&d.page.objects[len(d.page.objects)-1], name, v)
	case fieldPrefix:
		d.page.prefixes[len(d.page.prefixes)-1] = string(v)
	case fieldHeader:
		d.header(d.page.objects[len(d.page.objects)-1].headers, name, v)
	}
	return nil
}

// header takes one element of an object's <UserMetadata>. Header names
// are case-insensitive; MinIO sends "X-Amz-Meta-Mode" and "content-type".
func (d *listDecoder) header(h *objectHeaders, name, v []byte) {
	d.lower = append(d.lower[:0], name...)
	n := d.lower
	for i, c := range n {
		if 'A' <= c && c <= 'Z' {
			n[i] = c + 'a' - 'A'
		}
	}
	switch {
	case string(n) == "content-type":
		h.contentType = d.intern(v)
	case bytes.HasPrefix(n, []byte("x-amz-meta-")):
		if h.metadata == nil {
			h.metadata = make(map[string]string, 4)
		}
		val := string(v)
		if len(v) <= 8 {
			val = d.intern(v)
		}
		h.metadata[d.intern(n[len("x-amz-meta-"):])] = val
	}
}

func (d *listDecoder) objectField(o *listedObject, name, v []byte) error {
	switch string(name) {
	case "Key":
		o.key = string(v)
	case "ETag":
		o.etag = string(v)
	case "Size":
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: Size %q", errListXML, v)
		}
		o.size = n
	case "LastModified":
		t, err := smithytime.ParseDateTime(string(v))
		if err != nil {
			return fmt.Errorf("%w: LastModified %q", errListXML, v)
		}
		o.lastModified = t
	}
	return nil
}

// xmlScanner splits an XML document into the tokens a listing has: start
// and end tags (attributes skipped), text and CDATA. The prolog,
// processing instructions and comments are skipped; a DOCTYPE is refused.
type xmlScanner struct {
	b       []byte
	i       int
	sawRoot bool
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokStart
	tokEnd
	tokText
)

type token struct {
	kind      tokKind
	data      []byte // the name of a tag, or the raw text
	selfClose bool   // <name/>
	cdata     bool   // text from a CDATA section: no entities
}

func (s *xmlScanner) next() (token, error) {
	for {
		if s.i >= len(s.b) {
			return token{kind: tokEOF}, nil
		}
		rest := s.b[s.i:]
		if rest[0] != '<' {
			j := bytes.IndexByte(rest, '<')
			if j < 0 {
				j = len(rest)
			}
			s.i += j
			return token{kind: tokText, data: rest[:j]}, nil
		}
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			if err := s.skipPast("?>"); err != nil {
				return token{}, err
			}
		case bytes.HasPrefix(rest, []byte("<!--")):
			if err := s.skipPast("-->"); err != nil {
				return token{}, err
			}
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			body := rest[len("<![CDATA["):]
			j := bytes.Index(body, []byte("]]>"))
			if j < 0 {
				return token{}, fmt.Errorf("%w: unterminated CDATA", errListXML)
			}
			s.i += len("<![CDATA[") + j + len("]]>")
			return token{kind: tokText, data: body[:j], cdata: true}, nil
		case len(rest) > 1 && rest[1] == '!':
			return token{}, fmt.Errorf("%w: a declaration", errListXML)
		case len(rest) > 1 && rest[1] == '/':
			name, n := scanName(rest[2:])
			if len(name) == 0 {
				return token{}, fmt.Errorf("%w: a malformed end tag", errListXML)
			}
			k := 2 + n
			for k < len(rest) && isSpace(rest[k]) {
				k++
			}
			if k >= len(rest) || rest[k] != '>' {
				return token{}, fmt.Errorf("%w: a malformed end tag", errListXML)
			}
			s.i += k + 1
			return token{kind: tokEnd, data: name}, nil
		default:
			name, n := scanName(rest[1:])
			if len(name) == 0 {
				return token{}, fmt.Errorf("%w: a malformed tag", errListXML)
			}
			k, self, err := skipAttrs(rest, 1+n)
			if err != nil {
				return token{}, err
			}
			s.i += k
			return token{kind: tokStart, data: name, selfClose: self}, nil
		}
	}
}

func (s *xmlScanner) skipPast(end string) error {
	j := bytes.Index(s.b[s.i:], []byte(end))
	if j < 0 {
		return fmt.Errorf("%w: unterminated %q", errListXML, end)
	}
	s.i += j + len(end)
	return nil
}

// scanName returns the element name at the start of b, and its length
// (0: not a name this decoder takes). Names are ASCII letters, digits,
// '_', '-' and '.', not starting with a digit, '-' or '.'; a namespace
// prefix ("s3:Key") is refused, since the SDK would read it as "Key".
func scanName(b []byte) ([]byte, int) {
	n := 0
	for n < len(b) {
		c := b[n]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
		if !letter && (n == 0 || !('0' <= c && c <= '9' || c == '-' || c == '.')) {
			break
		}
		n++
	}
	if n < len(b) && !isSpace(b[n]) && b[n] != '/' && b[n] != '>' {
		return nil, 0
	}
	return b[:n], n
}

// listNames are the element names the decoder reads. The SDK matches
// names without regard to case; a name that matches one of these only so
// ("key") is left to it.
var listNames = []string{"ListBucketResult", "Contents", "CommonPrefixes", "Prefix", "Key", "Size",
	"ETag", "LastModified", "IsTruncated", "NextContinuationToken", "EncodingType", "UserMetadata"}

func oddlyCased(name []byte) bool {
	for _, n := range listNames {
		if len(n) == len(name) && string(name) != n && bytes.EqualFold(name, []byte(n)) {
			return true
		}
	}
	return false
}

// skipAttrs skips the attributes of a start tag from b[k] and returns the
// offset past its '>', and whether it was "/>".
func skipAttrs(b []byte, k int) (int, bool, error) {
	for k < len(b) {
		switch c := b[k]; {
		case c == '>':
			return k + 1, false, nil
		case c == '/':
			if k+1 < len(b) && b[k+1] == '>' {
				return k + 2, true, nil
			}
			return 0, false, fmt.Errorf("%w: a malformed tag", errListXML)
		case c == '"' || c == '\'':
			j := bytes.IndexByte(b[k+1:], c)
			if j < 0 {
				return 0, false, fmt.Errorf("%w: an unterminated attribute", errListXML)
			}
			k += j + 2
		case c == '<':
			return 0, false, fmt.Errorf("%w: a malformed tag", errListXML)
		default:
			k++
		}
	}
	return 0, false, fmt.Errorf("%w: an unterminated tag", errListXML)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// appendUnescaped appends text with its character and entity references
// resolved, and its line ends normalised to "\n" (as any XML decoder
// does).
func appendUnescaped(dst, text []byte) ([]byte, error) {
	for len(text) > 0 {
		j := bytes.IndexAny(text, "&\r")
		if j < 0 {
			return append(dst, text...), nil
		}
		dst = append(dst, text[:j]...)
		text = text[j:]
		if text[0] == '\r' {
			dst = append(dst, '\n')
			text = text[1:]
			if len(text) > 0 && text[0] == '\n' {
				text = text[1:]
			}
			continue
		}
		semi := bytes.IndexByte(text, ';')
		if semi < 0 {
			return nil, fmt.Errorf("%w: an unterminated reference", errListXML)
		}
		ref := text[1:semi]
		text = text[semi+1:]
		switch string(ref) {
		case "amp":
			dst = append(dst, '&')
		case "lt":
			dst = append(dst, '<')
		case "gt":
			dst = append(dst, '>')
		case "quot":
			dst = append(dst, '"')
		case "apos":
			dst = append(dst, '\'')
		default:
			r, ok := charRef(ref)
			if !ok {
				return nil, fmt.Errorf("%w: reference &%s;", errListXML, ref)
			}
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst, nil
}

// charRef reads "#NNN" or "#xHHH" as a character XML allows.
func charRef(ref []byte) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	var n uint64
	var err error
	if ref[1] == 'x' {
		n, err = strconv.ParseUint(string(ref[2:]), 16, 32)
	} else {
		n, err = strconv.ParseUint(string(ref[1:]), 10, 32)
	}
	if err != nil {
		return 0, false
	}
	r := rune(n)
	// XML 1.0's Char production.
	ok := r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
	return r, ok
}

// listBodies recycles the buffers listing answers are read into: a page
// is a few hundred KiB, read a few times a second by a tree walk.
var listBodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// listCall is the state of one ListObjectsV2 call's decoding.
type listCall struct {
	body *bytes.Buffer // the answer's body (from listBodies), or nil
	page *listPage     // set when this decoder read the answer
	// sdkOnly: keep the body, but leave all decoding to the SDK
	// (Store.sdkListDecoder).
	sdkOnly bool
}

func (l *listCall) release() {
	if l.body != nil && l.body.Cap() <= 4<<20 {
		l.body.Reset()
		listBodies.Put(l.body)
	}
	l.body = nil
}

// withListDecoder is an API option for one ListObjectsV2: it reads a 200
// answer's body into l.body and decodes it into l.page; the SDK's decoder
// then gets an empty body (and an empty output) instead. A body this
// decoder does not read goes to the SDK's decoder whole, as before.
func withListDecoder(l *listCall) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		// Added last in the deserialize step, it sees the raw response
		// before the operation's decoder reads it.
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("bucketfsListDecoder",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				resp, ok := out.RawResponse.(*smithyhttp.Response)
				if err != nil || !ok || resp == nil || resp.Response == nil || resp.StatusCode != 200 || resp.Body == nil {
					return out, md, err
				}
				// A retried attempt starts afresh.
				l.page = nil
				if l.body == nil {
					l.body = listBodies.Get().(*bytes.Buffer)
				}
				l.body.Reset()
				_, rerr := l.body.ReadFrom(resp.Body)
				resp.Body.Close()
				if rerr != nil {
					// The SDK's decoder sees the same failure and
					// the attempt is retried as any broken answer.
					resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(l.body.Bytes()), errReader{rerr}))
					return out, md, err
				}
				if l.sdkOnly {
					resp.Body = io.NopCloser(bytes.NewReader(l.body.Bytes()))
				} else if page, derr := decodeListPage(l.body.Bytes()); derr == nil {
					l.page = page
					resp.Body = io.NopCloser(bytes.NewReader(nil))
				} else {
					resp.Body = io.NopCloser(bytes.NewReader(l.body.Bytes()))
				}
				return out, md, err
			}), middleware.After)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
