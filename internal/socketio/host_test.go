package socketio

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// The mediator names itself in ICE server URLs by the Host its peers used.
func TestConnHostIsTheRequestsHost(t *testing.T) {
	ss := newSessionServer()
	base := startServer(t, ss.Server)
	c := dial(t, base)
	expectEvent(t, c, "welcome")
	if got, want := ss.session(t, 0).c.Host(), strings.TrimPrefix(base, "http://"); got != want {
		t.Fatalf("Host() = %q, want %q", got, want)
	}

	// As behind a reverse proxy: the request names another host.
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c2, err := Dial(ctx, base, &DialOptions{Header: http.Header{"Host": {"mediator.example:443"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	expectEvent(t, c2, "welcome")
	if got := ss.session(t, 1).c.Host(); got != "mediator.example:443" {
		t.Fatalf("Host() = %q, want mediator.example:443", got)
	}
}
