package federation

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/fetch"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/seed"
)

// TestTransferAcrossMediators seeds a file through mediator A and fetches it
// by hash through mediator C: real WebRTC offers and answers relayed between
// mediators, the info dictionary and the pieces over the data channel.
func TestTransferAcrossMediators(t *testing.T) {
	if testing.Short() {
		t.Skip("WebRTC transfer in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	ms := startMediators(t, 3, nil)
	a, c := ms[0], ms[2]

	dir := t.TempDir()
	data := make([]byte, 450000) // three pieces, the last one short
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	src := filepath.Join(dir, "src", "file.bin")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := rtc.New(rtc.Config{Loopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	ready := make(chan string, 1)
	var hash string // File runs before Ready, on Run's goroutine
	seedCtx, stopSeed := context.WithCancel(ctx)
	seedDone := make(chan error, 1)
	go func() {
		seedDone <- seed.Run(seedCtx, seed.Config{
			Paths:     []string{src},
			Mediator:  "http://" + a.addr,
			Transport: tr,
			Logger:    testLogger(),
			File:      func(e scan.Entry) { hash = e.Info.FullHash },
			Ready: func(n int) {
				if n == 1 {
					ready <- hash
				}
			},
		})
	}()
	defer func() {
		stopSeed()
		<-seedDone
	}()
	select {
	case hash = <-ready:
	case err := <-seedDone:
		t.Fatalf("seed ended: %v", err)
	case <-ctx.Done():
		t.Fatal("seeder never ready")
	}

	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := fetch.Run(ctx, fetch.Config{
		Hash:      hash,
		Output:    out,
		Mediator:  "http://" + c.addr,
		Transport: tr,
		Timeout:   40 * time.Second,
		Logger:    testLogger(),
	})
	if err != nil {
		t.Fatalf("fetch through C: %v", err)
	}
	got, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes differ from the %d seeded", len(got), len(data))
	}
}
