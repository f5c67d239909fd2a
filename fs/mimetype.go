package fs

import (
	"bufio"
	"log/slog"
	"mime"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/novitalabs/bucketfs/s3backend"
)

// Content-Type as s3fs sets it: from the name's extension through the
// system's mime.types (where objects served by URL or through a CDN get
// the type a browser needs to open them), the second-to-last extension
// when the last is unknown, application/octet-stream otherwise. Symlinks
// are application/octet-stream and directory markers
// application/x-directory, as s3fs writes them.

const (
	mimeTypesFile      = "/etc/mime.types"
	defaultContentType = "application/octet-stream"
)

// systemMimeTypes maps extensions (without the dot, lower-case) to types,
// read once from mime.types; nil when the file cannot be read.
var systemMimeTypes = sync.OnceValue(func() map[string]string {
	types, err := loadMimeTypes(mimeTypesFile)
	if err != nil {
		slog.Warn("no mime.types: Content-Type falls back to Go's short built-in table (install media-types or mime-support)",
			"path", mimeTypesFile, "err", err)
		return nil
	}
	return types
})

// loadMimeTypes reads a mime.types file: "type ext ext…" lines, '#'
// comments. A later line wins for an extension, as in s3fs.
func loadMimeTypes(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	types := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		for _, ext := range fields[1:] {
			types[strings.ToLower(ext)] = fields[0]
		}
	}
	return types, sc.Err()
}

// typeByExtension is the type registered for ext (no dot), "" if none.
func typeByExtension(types map[string]string, ext string) string {
	ext = strings.ToLower(ext)
	if types != nil {
		return types[ext]
	}
	// No system table: Go's built-in one, without parameters such as
	// "; charset=utf-8" that s3fs would not write.
	t, _, _ := strings.Cut(mime.TypeByExtension("."+ext), ";")
	return t
}

// contentTypeFor is the Content-Type of a name (its last path element).
func contentTypeFor(types map[string]string, key string) string {
	name := path.Base(key)
	stem, ext, ok := cutLast(name, ".")
	if !ok || ext == "" {
		return defaultContentType
	}
	if t := typeByExtension(types, ext); t != "" {
		return t
	}
	if _, ext2, ok := cutLast(stem, "."); ok && ext2 != "" {
		if t := typeByExtension(types, ext2); t != "" {
			return t
		}
	}
	return defaultContentType
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// contentType is what an object of kind k at key is stored with.
func contentType(k kind, key string) string {
	switch k {
	case kindDir:
		return dirContentType
	case kindSymlink:
		return defaultContentType
	}
	return contentTypeFor(systemMimeTypes(), key)
}

// putOptions are the headers an object of kind k at key is written with:
// its Content-Type and its metadata.
func putOptions(k kind, key string, a posixAttrs, foreign map[string]string) s3backend.PutOptions {
	return s3backend.PutOptions{ContentType: contentType(k, key), Metadata: buildMeta(k, a, foreign)}
}
