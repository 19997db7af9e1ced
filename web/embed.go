// Package web holds p2pcdn's browser peer library (p2pcdn.js) and its demo
// page, embedded in the binary so a mediator can serve them.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed p2pcdn.js index.html
var assets embed.FS

// asset is one file served by Handler, with a content-derived ETag so
// browsers revalidate cheaply and never run a stale library.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func load(name, contentType string) asset {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic("web: embedded asset missing: " + name) // impossible: go:embed checked it at build time
	}
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
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
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		// ServeContent answers If-None-Match with 304 and handles HEAD and ranges.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
