// Package wan measures and tests small transfers across a wide-area round trip: real `p2pcdn` processes
// and headless Chromium on a simulated internet (internal/testing/netlab) whose "far" host reaches the
// others through a delay line. The seeder, its mediator and a plain HTTP server sit on one public host;
// the downloader (a `p2pcdn get` process, `curl`, or a page in Chromium) sits on the far host, so every
// exchange between them costs the chosen round-trip time.
//
// The tests (TestGetAcrossWAN, TestPageAcrossWAN) check behaviour only: the transfers complete and verify
// across the delay, and `get --verbose` prints its round-trip timeline. They need root (the lab skips
// without it, saying why).
//
// TestWANMeasure measures instead, and runs only when P2PCDN_WAN_MEASURE names a directory: for each
// round-trip time in P2PCDN_WAN_RTTS (default 20ms,80ms,200ms) it times P2PCDN_WAN_RUNS (default 5)
// interleaved runs of each row against its baseline, and writes wan-<rtt>.json there. `bench/run --only
// wan` runs it and prints the rows; by hand:
//
//	P2PCDN_WAN_MEASURE=/tmp/wan go test -v -run TestWANMeasure -timeout 30m ./internal/e2e/wan
//
// The rows: whole-process `p2pcdn get` of 1 MB and of 100 KB against `curl` of the same file over plain
// HTTP from the seeder's host, and a page already connected to its mediator fetching 1 MB by hash
// against the same page's fetch() of the file over HTTP. Set P2PCDN_E2E_BIN to a prebuilt binary to skip
// the build. The package has no code of its own besides its tests.
package wan
