package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/p2pcdn/p2pcdn/web"
)

// makeFile writes size pseudo-random bytes (incompressible, so no layer can
// cheat) to dir/name, streaming, and returns the path.
func (b *bench) makeFile(dir, name string, size int64, seed uint64) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	if _, err := io.CopyN(w, rand.NewChaCha8(key), size); err != nil {
		f.Close()
		return "", err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// startWeb serves, on one loopback port: the test files under /files/, the
// WebTorrent browser bundle under /wt/, a blank page for the browser rows and
// p2pcdn's own web assets (/p2pcdn.js) for everything else.
func (b *bench) startWeb() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(filepath.Join(b.work, "files")))))
	mux.Handle("/wt/", http.StripPrefix("/wt/", http.FileServer(http.Dir(filepath.Join(b.root, "bench", "webtorrent", "node_modules", "webtorrent", "dist")))))
	mux.HandleFunc("/bench.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, `<!doctype html><meta charset="utf-8"><title>bench</title><script src="/p2pcdn.js"></script><body>bench</body>`)
	})
	mux.Handle("/", web.Handler())
	b.web = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	b.webURL = "http://" + ln.Addr().String()
	go b.web.Serve(ln) // ends when close shuts the server
	return nil
}

// httpGetArg makes this program a one-shot HTTP client: the whole-process
// lower bound for `p2pcdn get` (a Go binary that starts, downloads over
// loopback TCP, writes the file and exits).
const httpGetArg = "__httpget"

func httpGet(args []string) error {
	if len(args) != 2 {
		return errors.New("want URL and OUTPUT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", args[0], resp.Status)
	}
	f, err := os.Create(args[1])
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
