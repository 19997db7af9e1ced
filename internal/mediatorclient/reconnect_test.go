package mediatorclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// level returns the level of the first record whose message contains msg.
func (r *logRecorder) level(msg string) (slog.Level, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if strings.Contains(rec.Message, msg) {
			return rec.Level, true
		}
	}
	return 0, false
}

// proxy forwards TCP connections to an upstream address; paused, it cuts
// the connections it carries and refuses new ones, so a test decides when a
// client may reconnect.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	paused   bool
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.pause()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.paused {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(up, c); up.Close() })
		p.wg.Go(func() { io.Copy(c, up); c.Close() })
	}
}

func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// claim hands shake as id on a raw connection and holds it until the test
// ends, as a squatter would.
func claim(t *testing.T, url, id string) {
	t.Helper()
	c, err := socketio.Dial(ctx(t), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hs := mediation.Handshake{ID: id, Type: mediation.Mediation}
	c.Emit(hs.Event(), hs.Args()...)
	for {
		ev, err := c.ReadEvent(ctx(t))
		if err != nil {
			t.Fatalf("squatter refused: %v", err)
		}
		if ev.Name == mediation.EventEstablished {
			return
		}
	}
}

// After a mediator restart another client claims the seeder's id first
// (ids are public in peers answers). The seeder, refused, takes a fresh id
// and re-announces at once, so downloaders find it; before, it was refused
// again and again and vanished. It also logs "reconnected" at the level it
// logged "reconnecting", so whoever saw one sees the other.
func TestSquattedIDAfterRestart(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	px := startProxy(t, m.addr)
	rec := &logRecorder{}
	fast := socketio.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: 0.5}
	seeder := dial(t, px.url(), mediatorclient.Options{Backoff: fast, Logger: slog.New(rec)})
	old := seeder.PeerID()
	if err := seeder.Announce(ctx(t), hash1); err != nil {
		t.Fatal(err)
	}

	px.pause() // the seeder is cut off and cannot come back yet
	addr := m.addr
	m.stop()
	m2 := startMediator(t, addr)
	claim(t, m2.url(), old)
	px.resume()

	leecher := dial(t, m2.url(), mediatorclient.Options{})
	got := findPeers(t, leecher, hash1)
	if len(got) != 1 || got[0] == old || got[0] != seeder.PeerID() {
		t.Fatalf("after the squat FindPeers = %v; want only the seeder's new id %s (old %s)", got, seeder.PeerID(), old)
	}
	if _, ok := rec.level("refused our handshake"); !ok {
		t.Error("the refusal was not logged")
	}
	lost, ok1 := rec.level("lost connection to the mediator")
	back, ok2 := rec.level("reconnected to the mediator")
	if !ok1 || !ok2 || back < lost {
		t.Errorf("logged reconnecting (%v, %v) and reconnected (%v, %v); want both, reconnected at least as loud", lost, ok1, back, ok2)
	}
}

// With Retry, Dial waits for a mediator that is not up yet (a server booting
// with its mediator); without, it fails at once. A malformed URL fails at
// once either way.
func TestDialRetriesUntilMediatorUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there yet
	url := "ws://" + addr

	if _, err := mediatorclient.Dial(ctx(t), url, mediatorclient.Options{Logger: quiet()}); err == nil {
		t.Fatal("Dial without Retry succeeded with no mediator")
	}
	if _, err := mediatorclient.Dial(ctx(t), "ftp://"+addr, mediatorclient.Options{Retry: true, Logger: quiet()}); err == nil {
		t.Fatal("Dial accepted a malformed URL")
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	fast := socketio.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	_, err = mediatorclient.Dial(short, url, mediatorclient.Options{Retry: true, Backoff: fast, Logger: quiet()})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Dial with Retry until ctx ends: %v; want the last error naming %s and the deadline", err, addr)
	}

	rec := &logRecorder{}
	type result struct {
		c   *mediatorclient.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := mediatorclient.Dial(ctx(t), url, mediatorclient.Options{Retry: true, Backoff: fast, Logger: slog.New(rec)})
		done <- result{c, err}
	}()
	// Start the mediator only once Dial has failed at least once.
	for {
		if _, ok := rec.level("not reachable yet"); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	startMediator(t, addr)
	r := <-done
	if r.err != nil {
		t.Fatalf("Dial with Retry: %v", r.err)
	}
	defer r.c.Close()
	r.c.Announce(ctx(t), hash1)
	other := dial(t, url, mediatorclient.Options{})
	if got := findPeers(t, other, hash1); !slices.Equal(got, []string{r.c.PeerID()}) {
		t.Fatalf("got %v", got)
	}
}
