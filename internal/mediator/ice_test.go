package mediator

import (
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// peerEstablished is what a MEDIATION peer gets from a mediator without ICE
// servers.
var peerEstablished = mediation.Established{Caps: &mediation.Capabilities{P2PCDN: mediation.ExtensionLevel, Batch: DefaultBatch}}

// fakeICE hands out one server whose URL names the peer and the host it
// asked through, so a test sees both were passed on.
type fakeICE struct {
	mu    sync.Mutex
	calls int
}

var iceExpiry = time.Unix(1764460800, 0)

func (f *fakeICE) ICEServers(peerID, host string) ([]mediation.ICEServer, time.Time) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return []mediation.ICEServer{{URLs: []string{"turn:" + host}, Username: peerID, Credential: "c"}}, iceExpiry
}

func TestEstablishedCarriesICEServers(t *testing.T) {
	ice := &fakeICE{}
	addr := startServer(t, &Server{ICE: ice})
	a := dialOpt(t, addr, &socketio.DialOptions{Header: http.Header{"Host": {"mediator.example:443"}}})
	a.emit("handshake", idA, 0)
	want := mediation.Established{Caps: &mediation.Capabilities{
		P2PCDN:     1,
		Batch:      DefaultBatch,
		ICEServers: []mediation.ICEServer{{URLs: []string{"turn:mediator.example:443"}, Username: idA, Credential: "c"}},
		ICEExpires: iceExpiry.Unix(),
	}}
	a.expect(want)

	// Fresh ones on request.
	a.emit("get_ice_servers")
	a.expect(mediation.ICEServers{Servers: want.Caps.ICEServers, Expires: iceExpiry.Unix()})

	// Another mediator gets the prototype's established and no servers.
	other := dial(t, addr)
	other.emit("handshake", idC, 1)
	other.expect(mediation.Established{})
	other.emit("get_ice_servers")
	other.sync()
	ice.mu.Lock()
	defer ice.mu.Unlock()
	if ice.calls != 2 {
		t.Fatalf("ICEServers called %d times, want 2 (established and get_ice_servers of the peer)", ice.calls)
	}
}

func TestGetICEServersWithoutProvider(t *testing.T) {
	addr := startServer(t, &Server{})
	a := dial(t, addr)
	a.handshake(idA)
	a.emit("get_ice_servers")
	m, err := a.next()
	if err != nil {
		t.Fatal(err)
	}
	if want := (mediation.ICEServers{Servers: []mediation.ICEServer{}}); !reflect.DeepEqual(m, want) {
		t.Fatalf("got %#v, want an empty list", m)
	}
}
