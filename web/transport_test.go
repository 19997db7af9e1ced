package web

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// TestWebSocketFallsBackToPolling: behind a proxy that refuses WebSocket upgrades a page still
// connects, over long-polling, after its first WebSocket fails; and `transports: ["polling",
// "websocket"]` starts with long-polling and upgrades, as socket.io-client does.
func TestWebSocketFallsBackToPolling(t *testing.T) {
	m := startMediator(t)
	target, _ := url.Parse(m.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "no websockets here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	b := chromium.New(t)
	behind, direct := b.Tab(), b.NewTab()
	navigate(t, behind, proxy.URL+"/test.html")
	h := eval[[]string](t, behind, `(async () => {
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		return node.transports; })()`)
	if len(h) < 2 || h[0] != "websocket" || h[1] != "polling" {
		t.Errorf("behind the proxy: transports %q, want websocket, then polling", h)
	}
	if got := eval[string](t, behind, `node.transport`); got != "polling" {
		t.Errorf("behind the proxy the page ended on %q, want polling", got)
	}

	navigate(t, direct, m.URL()+"/test.html")
	eval[bool](t, direct, `(async () => {
		window.node = await p2pcdn.connect({iceServers: [], transports: ["polling", "websocket"]});
		return true; })()`)
	waitFor(t, direct, "the upgrade to websocket", `node.transport === "websocket"`)
	if h := eval[[]string](t, direct, `node.transports`); len(h) != 2 || h[0] != "polling" || h[1] != "websocket" {
		t.Errorf("polling first: transports %q, want polling then websocket", h)
	}
}
