package netlab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// queueLimit bounds the packets a delay line holds in each direction (a router's tail-drop queue): 4096
// full-size packets are 6 MB in flight, enough for a fast transfer at a 400 ms round trip.
const queueLimit = 4096

// delayLine joins two TUN devices in two namespaces: what one side sends, the other receives after the
// link's delay, in both directions.
type delayLine struct {
	a, b *os.File
	wg   sync.WaitGroup
	once sync.Once
}

// newDelayLine makes TUN device aIf in namespace aNS and bIf in bNS and starts moving packets between
// them. The devices still need addresses and to be set up.
func newDelayLine(aNS, aIf, bNS, bIf string, link Link) (*delayLine, error) {
	if link.Delay < 0 || link.Jitter < 0 || link.Jitter > link.Delay || link.Loss < 0 || link.Loss > 1 {
		return nil, fmt.Errorf("bad link %+v: want 0 <= Jitter <= Delay and 0 <= Loss <= 1", link)
	}
	a, err := openTUN(aNS, aIf)
	if err != nil {
		return nil, err
	}
	b, err := openTUN(bNS, bIf)
	if err != nil {
		a.Close()
		return nil, err
	}
	d := &delayLine{a: a, b: b}
	d.run(a, b, link)
	d.run(b, a, link)
	return d, nil
}

// packet is one IP packet on its way, due at the far side at time at.
type packet struct {
	at   time.Time
	data []byte
}

// run starts the two goroutines of one direction: one reads packets from src and stamps them with
// their due time; the other writes them to dst when due. Both end when the files are closed.
func (d *delayLine) run(src, dst *os.File, link Link) {
	q := make(chan packet, queueLimit)
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		defer close(q)
		buf := make([]byte, 1<<16)
		var last time.Time
		for {
			n, err := src.Read(buf)
			if err != nil {
				return // closed
			}
			if link.Loss > 0 && rand.Float64() < link.Loss {
				continue
			}
			delay := link.Delay
			if link.Jitter > 0 {
				delay += time.Duration(rand.Int64N(int64(2*link.Jitter)+1)) - link.Jitter
			}
			at := time.Now().Add(delay)
			if at.Before(last) { // jitter never reorders
				at = last
			}
			last = at
			select {
			case q <- packet{at: at, data: append([]byte(nil), buf[:n]...)}:
			default: // queue full: tail drop
			}
		}
	}()
	go func() {
		defer d.wg.Done()
		t := time.NewTimer(0)
		defer t.Stop()
		for p := range q {
			if wait := time.Until(p.at); wait > 0 {
				t.Reset(wait)
				<-t.C
			}
			if _, err := dst.Write(p.data); err != nil && errors.Is(err, os.ErrClosed) {
				// Drain until the reader sees its own file closed and closes q.
				for range q {
				}
				return
			}
			// Other write errors (the device is down, say) lose the packet, as a wire would.
		}
	}()
}

// close stops the line and waits for its goroutines.
func (d *delayLine) close() {
	d.once.Do(func() {
		d.a.Close()
		d.b.Close()
		d.wg.Wait()
	})
}

// openTUN creates TUN device name (IP packets, no extra header) in namespace ns, non-blocking so that
// Close interrupts a pending Read.
func openTUN(ns, name string) (*os.File, error) {
	var f *os.File
	err := inNetns(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("creating TUN device %s in %s: %w", name, ns, err)
		}
		f = os.NewFile(uintptr(fd), "tun:"+ns+"/"+name)
		return nil
	})
	return f, err
}
