// Package web holds p2pcdn's browser peer library (p2pcdn.js) and its demo
// page, embedded in the binary so a mediator can serve them.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

//go:embed p2pcdn.js index.html
var assets embed.FS

// asset is one file served by Handler, with a content-derived ETag so
// browsers revalidate cheaply and never run a stale library, and its gzip
// form (a quarter of the bytes) for clients that take it.
type asset struct {
	body, gz    []byte
	contentType string
	etag        string
}

func load(name, contentType string) asset {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic("web: embedded asset missing: " + name) // impossible: go:embed checked it at build time
	}
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression) // the level is valid
	zw.Write(b)                                            //nolint:errcheck // a bytes.Buffer does not fail
	zw.Close()                                             //nolint:errcheck // likewise
	sum := sha256.Sum256(b)
	return asset{body: b, gz: z.Bytes(), contentType: contentType, etag: hex.EncodeToString(sum[:12])}
}

// Handler serves the library at /p2pcdn.js and the demo page at /; every
// other path is 404, so it can sit behind a mediator's own routes.
func Handler() http.Handler {
	files := map[string]asset{
		"/":          load("index.html", "text/html; charset=utf-8"),
		"/p2pcdn.js": load("p2pcdn.js", "text/javascript; charset=utf-8"),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("Vary", "Accept-Encoding")
		h.Set("X-Content-Type-Options", "nosniff")
		body, etag := a.body, a.etag
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gz, etag+"-gz" // each encoding has its own validator
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", `"`+etag+`"`)
		// ServeContent answers If-None-Match with 304 and handles HEAD and ranges.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (not
// refused with q=0).
func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return !strings.HasPrefix(q, "q=0") || strings.Trim(strings.TrimPrefix(q, "q=0"), ".0") != ""
	}
	return false
}
