package swarm

import (
	"sync"

	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// outbox holds what a peer's writer still has to send. Producers never
// block on it, so a peer that reads slowly stalls only its own writer.
type outbox struct {
	mu   sync.Mutex
	ctrl []byte         // encoded small messages, in order
	reqs []wire.Message // blocks to upload; Length already fitted to the piece
	wake chan struct{}  // capacity 1
}

func newOutbox() *outbox { return &outbox{wake: make(chan struct{}, 1)} }

func (o *outbox) notify() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// push queues an encoded message; false means the peer is not reading.
func (o *outbox) push(m wire.Message) bool {
	o.mu.Lock()
	o.ctrl = wire.AppendMessage(o.ctrl, m)
	ok := len(o.ctrl) <= maxCtrlBacklog
	o.mu.Unlock()
	o.notify()
	return ok
}

// queueUpload adds a block request; false when max are already waiting.
func (o *outbox) queueUpload(m wire.Message, max int) bool {
	o.mu.Lock()
	if len(o.reqs) >= max {
		o.mu.Unlock()
		return false
	}
	o.reqs = append(o.reqs, m)
	o.mu.Unlock()
	o.notify()
	return true
}

// cancelUpload drops a queued request matching m.
func (o *outbox) cancelUpload(m wire.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, r := range o.reqs {
		if r.Index == m.Index && r.Begin == m.Begin {
			o.reqs = append(o.reqs[:i], o.reqs[i+1:]...)
			return
		}
	}
}

// take returns the pending control bytes (swapping in spare for reuse) and
// the next upload, if any.
func (o *outbox) take(spare []byte) (ctrl []byte, req wire.Message, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ctrl, o.ctrl = o.ctrl, spare[:0]
	if len(o.reqs) > 0 {
		req, ok = o.reqs[0], true
		o.reqs = o.reqs[1:]
		if len(o.reqs) == 0 {
			o.reqs = nil // let the backing array go
		}
	}
	return ctrl, req, ok
}
