// Package nat holds the NAT matrix: end-to-end transfers between peers on a simulated internet
// (internal/testing/netlab) — public hosts, cone and symmetric NATs, a firewall that drops UDP — where
// the only help a peer gets is its mediator's own STUN/TURN (`p2pcdn mediator --turn` on a public host)
// and no peer has an ICE flag. Each cell runs real `p2pcdn seed` / `p2pcdn get` processes, or the web
// library in headless Chromium, on its own hosts, with its own mediator, in parallel with the others in
// one lab. The failure cells (both peers NATed, a mediator without TURN) check that `get` gives up with
// exit code 5, and a page's fetch with an error saying ICE failed, well before their timeouts.
//
// The test logs the matrix (cell, outcome, time, whether the bytes went directly between the peers'
// public addresses or through the mediator's relay, as the lab's internet router counted them):
//
//	go test -v -run TestNATMatrix ./internal/e2e/nat
//
// Cells run 16 at a time unless -parallel says otherwise; -parallel 1 gives each cell the machine to
// itself, for figures.
//
// A cell that needs a feature this build lacks (seen in `p2pcdn mediator --help` and `get --help`) is
// skipped, naming it; P2PCDN_NAT_ALL=1 runs it anyway, to see how it fails. It needs root (the lab skips without it, saying why). Set P2PCDN_E2E_BIN to a prebuilt binary to skip
// the build. The package has no code of its own besides its tests.
package nat
