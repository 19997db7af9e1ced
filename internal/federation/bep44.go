package federation

import (
	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/krpc"
)

// noItems is the DHT node's BEP 44 store: it keeps nothing. Mediators have no
// use for arbitrary DHT items, and the library's default store keeps every
// put until someone asks for it again (expiry is checked on get only), so a
// flood of puts from one socket grew the heap without bound (issue 11).
// Refusing puts costs nothing and leaves get answering with nodes and a
// token, as for any unknown target.
type noItems struct{}

var _ bep44.Store = noItems{}

// errNoItems answers a put: "method unknown" tells the writer to store its
// item elsewhere.
var errNoItems = krpc.Error{Code: krpc.ErrorCodeMethodUnknown, Msg: "this node stores no BEP 44 items"}

func (noItems) Put(*bep44.Item) error                 { return errNoItems }
func (noItems) Get(bep44.Target) (*bep44.Item, error) { return nil, bep44.ErrItemNotFound }
func (noItems) Del(bep44.Target) error                { return nil }
