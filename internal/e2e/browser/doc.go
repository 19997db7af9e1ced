// Package browser holds end-to-end tests between browser peers (the web
// library in headless Chromium) and native peers (real p2pcdn processes), and
// the benchmarks that compare those transfers with baselines measured in the
// same run. Everything runs on loopback: an in-process mediator serving the
// web library on 127.0.0.1, Chromium from internal/chromium, and the p2pcdn
// binary built once per test run (set P2PCDN_E2E_BIN to use a prebuilt one).
// The package has no code of its own besides its tests.
//
// Figures (each reported with its same-run baseline and their ratio):
//
//	go test -run XXX -bench . -benchtime 10x ./internal/e2e/browser
//
// Screenshots of the demo page go to $P2PCDN_ARTIFACTS, or to a temporary
// directory named in the test log.
package browser
