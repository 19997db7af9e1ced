// Package socketio is the Engine.IO 4 / Socket.IO 5 transport of mediation: a server (HTTP long-polling,
// upgrade to WebSocket, direct WebSocket) and a WebSocket-only client, both yielding a Conn that exchanges
// JSON events on the default namespace. Acknowledgements and binary attachments are not part of p2pcdn's
// protocol: they are skipped, never fatal. The packet decoders (ParseEnginePacket, SplitPayload,
// ParseSocketPacket, ParseEvent) are pure functions with fuzz targets.
//
// A server hands a connection's events either to a Handler goroutine that calls ReadEvent, or, with
// Server.Accept, to a Session whose methods are called as the events arrive: no goroutine per connection
// beyond its websocket reader, whose stack stays small because a few shared workers do the processing.
//
// Every connection has bounded queues both ways: an application that emits faster than the peer reads, or a
// peer that sends faster than the application reads, gets the connection closed rather than growing memory;
// TryEmit drops an event instead, for events other clients cause. What an unauthenticated client can hold is
// bounded too: sessions per client address (MaxSessionsPerClient, behind trusted proxies via ClientAddr), time
// to connect the namespace counted from the transport's opening (ConnectTimeout), the life of a polling
// session never polled (UnpolledTimeout), the time a polling body may take, and ping payloads.
package socketio
