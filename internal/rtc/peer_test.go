package rtc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// connectPeers connects a to b with DialPeer/AcceptPeer over in-memory signalling.
func connectPeers(t *testing.T, a, b *Transport, label string) (pa, pb *Peer, ca, cb Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	a2b, b2a := make(chan string, 64), make(chan string, 64)
	offers := make(chan string, 1)
	type res struct {
		p   *Peer
		c   Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		select {
		case o := <-offers:
			p, c, err := b.AcceptPeer(ctx, o, Options{}, chanSend(b2a), a2b)
			acc <- res{p, c, err}
		case <-ctx.Done():
			acc <- res{err: ctx.Err()}
		}
	}()
	first := true
	send := func(ctx context.Context, s string) error {
		if first {
			first = false
			offers <- s
			return nil
		}
		return chanSend(a2b)(ctx, s)
	}
	pa, ca, err := a.DialPeer(ctx, Options{Label: label}, send, b2a)
	if err != nil {
		t.Fatalf("DialPeer: %v", err)
	}
	r := <-acc
	if r.err != nil {
		t.Fatalf("AcceptPeer: %v", r.err)
	}
	t.Cleanup(func() { _ = pa.Close(); _ = r.p.Close() })
	return pa, r.p, ca, r.c
}

func echo(t *testing.T, w, r Conn, msg string) {
	t.Helper()
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatalf("write on %s: %v", w.Label(), err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != msg {
		t.Fatalf("read on %s: %q, %v", r.Label(), got, err)
	}
}

// TestPeerManyChannels: one connection carries several channels opened in-band by either side, each
// its own byte stream; closing one leaves the others and the connection open.
func TestPeerManyChannels(t *testing.T) {
	a := newTestTransport(t, Config{})
	b := newTestTransport(t, Config{})
	pa, pb, ca, cb := connectPeers(t, a, b, "p2pcdn/first")
	if ca.Label() != "p2pcdn/first" || cb.Label() != "p2pcdn/first" {
		t.Fatalf("first channel labels %q, %q", ca.Label(), cb.Label())
	}
	if pa.Extension() != ExtensionLevel || pb.Extension() != ExtensionLevel {
		t.Fatalf("extension levels %d, %d: our peers must see each other's marks", pa.Extension(), pb.Extension())
	}
	echo(t, ca, cb, "first a->b")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	type pair struct{ mine, theirs Conn }
	var pairs []pair
	for i := range 6 {
		opener, acceptor := pa, pb
		if i%2 == 1 {
			opener, acceptor = pb, pa
		}
		label := fmt.Sprintf("p2pcdn/%d", i)
		c, err := opener.OpenChannel(ctx, label)
		if err != nil {
			t.Fatalf("OpenChannel %s: %v", label, err)
		}
		var in Conn
		select {
		case in = <-acceptor.Incoming():
		case <-ctx.Done():
			t.Fatalf("channel %s never arrived", label)
		}
		if in.Label() != label {
			t.Fatalf("incoming label %q, want %q", in.Label(), label)
		}
		pairs = append(pairs, pair{c, in})
	}
	for i, p := range pairs {
		echo(t, p.mine, p.theirs, fmt.Sprintf("hello %d", i))
		echo(t, p.theirs, p.mine, fmt.Sprintf("back %d", i))
	}
	if n := pa.Channels(); n != 7 {
		t.Errorf("%d channels on a, want 7", n)
	}
	// Refusing a channel is closing it: the opener reads EOF; everything else stays up.
	_ = pairs[0].theirs.Close()
	if _, err := pairs[0].mine.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read on a channel the remote closed: %v, want io.EOF", err)
	}
	echo(t, ca, cb, "still there")
	echo(t, pairs[1].mine, pairs[1].theirs, "and this one")
	select {
	case <-pa.Done():
		t.Fatal("closing a channel ended the connection")
	default:
	}
	// Closing the connection ends every channel.
	_ = pa.Close()
	for _, c := range []Conn{cb, pairs[2].theirs} {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: read after the remote closed the connection succeeded", c.Label())
		}
	}
	if _, err := pa.OpenChannel(ctx, "p2pcdn/late"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("OpenChannel on a closed peer: %v", err)
	}
	select {
	case <-pb.Done():
	case <-time.After(testTimeout):
		t.Error("the remote peer connection did not end")
	}
}

// TestPeerPrototypeOffer: an unmarked offer (simple-peer's) gets a complete answer and extension 0.
func TestPeerPrototypeOffer(t *testing.T) {
	b := newTestTransport(t, Config{})
	_, dc, c := plainOfferer(t, b, nil)
	if c.Label() != "prototype" {
		t.Errorf("label %q", c.Label())
	}
	if err := dc.SendText("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if got := c.(*conn).p.Extension(); got != 0 {
		t.Errorf("a prototype peer's extension level %d, want 0", got)
	}
}

// TestWriteEndsWhenRemoteClosesChannel: a Write blocked on a full window ends when the remote closes
// that channel (seen by our reader, as the peer wire always reads), while the connection and its other
// channels stay up.
func TestWriteEndsWhenRemoteClosesChannel(t *testing.T) {
	a := newTestTransport(t, Config{HighWater: 64 << 10, SCTPReceiveBuffer: 128 << 10})
	b := newTestTransport(t, Config{SCTPReceiveBuffer: 128 << 10})
	pa, pb, ca, cb := connectPeers(t, a, b, "p2pcdn/first")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c2, err := pa.OpenChannel(ctx, "p2pcdn/second")
	if err != nil {
		t.Fatal(err)
	}
	in := <-pb.Incoming()
	readErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c2)
		readErr <- err
	}()
	writeErr := make(chan error, 1)
	go func() {
		_, err := c2.Write(make([]byte, 64<<20))
		writeErr <- err
	}()
	select {
	case err := <-writeErr:
		t.Fatalf("a 64 MiB write to a channel nobody reads finished: %v", err)
	case <-time.After(300 * time.Millisecond): // only gives Write time to block
	}
	_ = in.Close()
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("Write returned no error after the remote closed the channel")
		}
	case <-time.After(testTimeout):
		t.Fatal("Write still blocked after the remote closed the channel")
	}
	if err := <-readErr; err != nil {
		t.Errorf("reader: %v, want a clean EOF", err)
	}
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("a second read after EOF: %v", err)
	}
	echo(t, ca, cb, "the first channel still works")
	echo(t, cb, ca, "both ways")
}

// TestChannelsShareTheSendWindow: channels on one connection feed one socket at the remote, so what
// they have queued or in flight together stays within one window (toward a peer that advertises no
// socket size, the browser-safe 64 KiB), and every byte of every channel still arrives.
func TestChannelsShareTheSendWindow(t *testing.T) {
	// A tiny rate keeps the window at its floor however long a busy machine makes the round trip.
	a := newTestTransport(t, Config{WindowRate: 1})
	b := newTestTransport(t, Config{SocketBuffer: -1}) // says nothing about its socket, like a browser
	pa, pb, ca, cb := connectPeers(t, a, b, "p2pcdn/first")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	senders, receivers := []Conn{ca}, []Conn{cb}
	for i := range 7 {
		c, err := pa.OpenChannel(ctx, fmt.Sprintf("p2pcdn/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case in := <-pb.Incoming():
			senders, receivers = append(senders, c), append(receivers, in)
		case <-ctx.Done():
			t.Fatal("a channel never arrived")
		}
	}
	const size = 1 << 20
	errs := make(chan error, 2*len(senders))
	for i := range senders {
		data := bytes.Repeat([]byte{byte(i)}, size)
		go func() {
			_, err := senders[i].Write(data)
			errs <- err
		}()
		go func() {
			got, err := io.ReadAll(io.LimitReader(receivers[i], size))
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("channel %d: %d bytes, not what was sent", i, len(got))
			}
			errs <- err
		}()
	}
	most := 0
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // ends with stop
		defer close(sampled)
		for {
			// Under the pacer's lock no room is granted, so the amounts read one by one cannot add up
			// to more than they were together.
			pace := ca.(*conn).pace
			pace.mu.Lock()
			sum := 0
			for _, c := range senders {
				sum += int(c.(*conn).dc.BufferedAmount())
			}
			pace.mu.Unlock()
			most = max(most, sum)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	for range 2 * len(senders) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-sampled
	if most > DefaultMinWindow {
		t.Errorf("the channels had %d bytes queued or in flight together, want at most one window of %d", most, DefaultMinWindow)
	}
	if most == 0 {
		t.Error("never saw anything buffered: the sampler saw nothing of the transfer")
	}
}
