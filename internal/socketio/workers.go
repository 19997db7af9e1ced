package socketio

import (
	"runtime"
	"sync/atomic"
	"time"
)

const (
	// workerIdle is how long an idle worker waits for another packet before it ends.
	workerIdle = time.Second
	// maxWorkersPerCPU bounds the workers. A handover succeeds only when a worker is parked, and a busy
	// server has many runnable but not yet parked: a low bound would make readers handle most messages
	// themselves and grow their stacks after all.
	maxWorkersPerCPU = 64
)

// frame is one inbound websocket message waiting for a worker.
type frame struct {
	c    *Conn
	data string
}

// workers process inbound websocket messages for Accept (Session) servers. A connection's reader hands each
// message over and waits for it to be handled, so events stay in order, but the reader's own stack stays as
// small as the websocket read path needs (2-4 KiB) instead of growing to what JSON decoding, the session and
// the encoding of answers need (8 KiB, and the runtime shrinks idle stacks only slowly): with many idle
// connections that stack is most of a connection's cost. Workers
// are few and exist only while there is work; a reader that finds every worker busy handles its message
// itself, so a saturated server degrades to the plain design instead of queueing.
type workers struct {
	s      *Server
	frames chan frame // unbuffered: a send succeeds only when a worker is idle
	quit   chan struct{}
	n      atomic.Int32
	max    int32
}

func newWorkers(s *Server) *workers {
	return &workers{s: s, frames: make(chan frame), quit: make(chan struct{}), max: int32(maxWorkersPerCPU * runtime.GOMAXPROCS(0))}
}

// handle runs c.handleMessage(data) on a worker, or inline when none is free, and returns its result.
func (w *workers) handle(c *Conn, data string) error {
	f := frame{c: c, data: data}
	select {
	case w.frames <- f:
		return <-c.handled
	default:
	}
	if w.n.Add(1) <= w.max && w.s.track() {
		go w.run(f)
		return <-c.handled
	}
	w.n.Add(-1)
	return c.handleMessage(data)
}

// run is one worker: it handles f, then further frames, and ends after workerIdle without one or when the
// server shuts down.
func (w *workers) run(f frame) {
	defer w.s.wg.Done()
	defer w.n.Add(-1)
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f.c.handled <- f.c.handleMessage(f.data)
		f = frame{}
		idle.Reset(workerIdle)
		select {
		case f = <-w.frames:
		case <-idle.C:
			return
		case <-w.quit:
			return
		}
	}
}
