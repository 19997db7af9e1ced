package mediator

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

const (
	// topHashes is how many hashes GET /hashes lists.
	topHashes = 100
	// topCacheFor is how long one answer of GET /hashes is reused: pages
	// may poll it, and each computation walks the popular hashes.
	topCacheFor = 2 * time.Second
)

// topCache holds the encoded answer of GET /hashes for topCacheFor, so a
// page polling it (or many pages) costs one walk of the registry per period.
type topCache struct {
	reg *registry

	mu    sync.Mutex
	body  []byte
	until time.Time
}

func (c *topCache) get(now time.Time) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.body != nil && now.Before(c.until) {
		return c.body
	}
	hashes, total := c.reg.top(topHashes)
	body, _ := json.Marshal(struct {
		Hashes []hashCount `json:"hashes"`
		Total  int         `json:"total"`
	}{hashes, total})
	c.body, c.until = append(body, '\n'), now.Add(topCacheFor)
	return c.body
}

// serveHashes answers GET /hashes with what the peers connected here seed:
// {"hashes":[{"hash":"…","seeders":N},…],"total":M}, the 100 most seeded
// first, M all hashes with a seeder here. Pages on other origins may read it.
func (s *Server) serveHashes(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=2")
	w.Write(s.top.get(time.Now()))
}
