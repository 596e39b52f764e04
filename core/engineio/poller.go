package engineio

// pollable is what the poller (poller_linux.go) parks: a socket whose
// reader has ended, to be given a new reader once it is readable. The
// poller knows nothing else of its owner (a session's wsTransport).
type pollable interface {
	// pollReg is the socket's registration, always the same pointer.
	pollReg() *pollReg
	// parkable says whether the owner still wants its socket watched
	// (false once closed). The poller asks under its lock, so an owner
	// that marks itself closed before forget is never left parked.
	parkable() bool
	// readLoop reads what is there, on a goroutine the poller starts:
	// wait false once the socket is readable; wait true when the poller
	// stops, and the socket may have nothing yet.
	readLoop(wait bool)
}

// pollReg names a socket in the poller.
type pollReg struct {
	token uint64 // unique per socket, never reused (unlike fd); 0: none
	fd    int32  // the socket's descriptor
	added bool   // in the epoll set; guarded by the poller's lock
}
