package chromium

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func TestNewRunsPageAndGathersLoopbackCandidate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>ok</title><script>console.log("hello from page")</script>`)
	}))
	defer srv.Close()

	b := New(t)
	ctx, cancel := context.WithTimeout(b.Tab(), 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.title"))
	if err != nil || title != "ok" {
		t.Fatalf("title = %q, %v; want ok", title, err)
	}
	// Without the flags and the permission Chromium would offer no loopback
	// candidate, and browser peers on one host could not meet.
	cand, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const pc = new RTCPeerConnection({iceServers: []});
		pc.createDataChannel("x");
		await pc.setLocalDescription(await pc.createOffer());
		await new Promise(r => { if (pc.iceGatheringState === "complete") r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
		const sdp = pc.localDescription.sdp; pc.close();
		return sdp.split("\r\n").filter(l => l.startsWith("a=candidate")).join("\n");
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("candidates:\n%s", cand)
	if !containsLoopback(cand) {
		t.Fatalf("no 127.0.0.1 host candidate gathered:\n%s", cand)
	}

	tab2 := b.NewTab()
	ctx2, cancel2 := context.WithTimeout(tab2, 60*time.Second)
	defer cancel2()
	if err := chromedp.Do(ctx2, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
}

func containsLoopback(s string) bool {
	for i := 0; i+9 <= len(s); i++ {
		if s[i:i+9] == "127.0.0.1" {
			return true
		}
	}
	return false
}
