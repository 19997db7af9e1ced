package mediator

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// signalLimits are the server-wide settings of signalBudget.
type signalLimits struct {
	rate       rate.Limit // bytes per second one peer may receive; 0: no limit
	burst      int
	sender     rate.Limit // bytes per second from one sender to one peer
	senderMax  int        // its burst
	maxSenders int        // senders with a bucket of their own per receiver
}

// signalBudget protects one receiving peer from signal floods (issue 11,
// attack 9): what others signal it is dropped beyond a budget of bytes per
// second, instead of piling up in its queue until the transport closes it as
// a slow consumer. Each sender draws on a bucket of its own as well as on
// the receiver's, so one flooding sender uses up only its own share and
// others still get through; senders beyond maxSenders share one bucket.
// Buckets exist only once someone signals the peer.
type signalBudget struct {
	mu      sync.Mutex
	total   *rate.Limiter
	senders map[string]*rate.Limiter
	shared  *rate.Limiter
}

// allow reports whether size bytes from sender may go to the receiver now,
// and takes them from the budget if so.
func (b *signalBudget) allow(l *signalLimits, sender string, size int, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total == nil {
		b.total = rate.NewLimiter(l.rate, l.burst)
		b.senders = make(map[string]*rate.Limiter)
	}
	own := b.senders[sender]
	if own == nil {
		if len(b.senders) >= l.maxSenders {
			// Forget a sender that has been quiet long enough to have its
			// whole burst back: it loses nothing.
			for id, lim := range b.senders {
				if lim.TokensAt(now) >= float64(lim.Burst()) {
					delete(b.senders, id)
					break
				}
			}
		}
		if len(b.senders) < l.maxSenders {
			own = rate.NewLimiter(l.sender, l.senderMax)
			b.senders[sender] = own
		} else {
			if b.shared == nil {
				b.shared = rate.NewLimiter(l.sender, l.senderMax)
			}
			own = b.shared
		}
	}
	r := own.ReserveN(now, size)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return false
	}
	if t := b.total.ReserveN(now, size); !t.OK() || t.DelayFrom(now) > 0 {
		t.CancelAt(now)
		r.CancelAt(now)
		return false
	}
	return true
}
