// Package e2e holds end-to-end tests of native transfers: they build the
// p2pcdn binary once per test run and drive real processes (a standalone
// mediator, seeders, `p2pcdn get`) over real sockets and real WebRTC, on
// loopback only. The package has no code of its own besides its tests.
//
// Set P2PCDN_E2E_BIN to a prebuilt binary to skip the build.
package e2e
