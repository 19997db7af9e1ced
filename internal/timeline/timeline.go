// Package timeline records when the steps of one operation happened, so that `p2pcdn get --verbose` can
// show where the round trips of a download go (mediator connection, signalling, ICE, DTLS, SCTP, the
// BitTorrent exchange, the first piece).
//
// A Timeline travels in a context.Context: the layers a download passes through mark their steps with
// Mark(ctx, name) and need no new configuration; without a Timeline in the context, Mark does nothing.
// Only the first occurrence of each step is kept (the first peer to get there is the critical path), and
// a Timeline holds at most MaxSteps steps.
package timeline

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// MaxSteps bounds the steps one Timeline keeps.
const MaxSteps = 64

// Step is one step and when it first happened, since the Timeline's start.
type Step struct {
	Name string
	At   time.Duration
}

// Timeline is the steps of one operation. Its methods are safe for concurrent use; a nil *Timeline
// ignores marks.
type Timeline struct {
	start time.Time

	mu    sync.Mutex
	steps []Step
	seen  map[string]bool
}

// New starts a timeline at start.
func New(start time.Time) *Timeline {
	return &Timeline{start: start, seen: make(map[string]bool)}
}

// Mark records that step name happened now, unless it was marked before.
func (t *Timeline) Mark(name string) {
	if t == nil {
		return
	}
	at := time.Since(t.start)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[name] || len(t.steps) >= MaxSteps {
		return
	}
	t.seen[name] = true
	t.steps = append(t.steps, Step{Name: name, At: at})
}

// Steps returns the steps marked so far, in the order they happened.
func (t *Timeline) Steps() []Step {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Step(nil), t.steps...)
}

// WriteTo writes the steps as a table: milliseconds since the start, milliseconds since the step before,
// the step. Each line starts with "timeline", so the table can be picked out of a log.
func (t *Timeline) WriteTo(w io.Writer) (int64, error) {
	var n int64
	var last time.Duration
	for _, s := range t.Steps() {
		k, err := fmt.Fprintf(w, "timeline %6.1f ms  %+7.1f  %s\n", ms(s.At), ms(s.At-last), s.Name)
		n += int64(k)
		if err != nil {
			return n, err
		}
		last = s.At
	}
	return n, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type ctxKey struct{}

// NewContext returns ctx carrying t.
func NewContext(ctx context.Context, t *Timeline) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the Timeline ctx carries, or nil.
func FromContext(ctx context.Context) *Timeline {
	t, _ := ctx.Value(ctxKey{}).(*Timeline)
	return t
}

// Mark marks step name on the Timeline ctx carries, if any.
func Mark(ctx context.Context, name string) { FromContext(ctx).Mark(name) }
