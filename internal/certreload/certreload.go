// Package certreload serves a TLS certificate from PEM files and picks up
// renewed files without a restart: on a handshake, at most once per
// Interval, it stats both files and reloads them when either changed. A
// renewal caught half-written (a new certificate with the old key) fails to
// load; the previous certificate stays in use and the next check tries again.
package certreload

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultInterval is how often the files are checked at most.
const DefaultInterval = 10 * time.Second

// Reloader holds the current certificate. Create it with New.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   stamp
	checked time.Time
	failed  stamp // the files as they were when loading them last failed
}

// stamp identifies a version of both files.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// New loads certFile and keyFile (PEM) and checks them for changes at most
// once per interval (DefaultInterval when zero).
func New(certFile, keyFile string, interval time.Duration, log *slog.Logger) (*Reloader, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval, log: log}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.checked = cert, st, time.Now()
	return r, nil
}

func (r *Reloader) stat() (stamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return stamp{}, fmt.Errorf("TLS certificate: %w", err)
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return stamp{}, fmt.Errorf("TLS key: %w", err)
	}
	return stamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	return &cert, nil
}

// Certificate returns the current certificate, reloading it first if the
// files changed and the last check is Interval old.
func (r *Reloader) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.checked) < r.interval {
		return r.cert
	}
	r.checked = now
	st, err := r.stat()
	if err != nil || st == r.stamp || st == r.failed {
		if err != nil && st != r.failed {
			r.log.Warn("cannot check the TLS certificate for renewal; keeping the current one", "err", err)
			r.failed = st
		}
		return r.cert
	}
	cert, err := r.load()
	if err != nil {
		r.log.Warn("renewed TLS certificate does not load; keeping the current one", "err", err)
		r.failed = st
		return r.cert
	}
	r.cert, r.stamp = cert, st
	r.log.Info("TLS certificate reloaded", "file", r.certFile)
	return r.cert
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}
