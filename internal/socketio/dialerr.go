package socketio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// causeError shows a short cause to the user while keeping the full chain
// for errors.Is and errors.As.
type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

// dialCause words a failed WebSocket dial by its cause alone: the caller
// names the server it dialed, so the URL (with the Engine.IO query) and the
// "dial tcp ADDR:" prefix of net errors would only repeat it.
func dialCause(err error, timeout string) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return &causeError{msg: "no answer within " + timeout, err: err}
	case errors.Is(err, context.Canceled):
		return err
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return &causeError{msg: fmt.Sprintf("cannot resolve %s: %s", dns.Name, dns.Err), err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		inner := op.Err
		var sys *os.SyscallError
		if errors.As(inner, &sys) {
			inner = sys.Err
		}
		return &causeError{msg: inner.Error(), err: err}
	}
	return err
}
