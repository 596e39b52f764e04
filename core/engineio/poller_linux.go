package engineio

import (
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// poller parks idle WebSocket readers: instead of a goroutine blocked in a
// read (2 KiB of stack and a goroutine descriptor for as long as the
// client says nothing), a session with nothing to read registers its
// socket with an epoll set, one-shot, and its reader goroutine ends. One
// goroutine waits on the set and starts a reader for each socket that
// becomes readable (data, a close, an error). The Go runtime's own poller
// keeps the socket too; the reader reads through it as before.
//
// The epoll set is itself a pollable descriptor: the runtime's poller
// watches it like a socket, so the loop is an ordinary goroutine parked
// in the runtime's poller, not a thread blocked in epoll_wait.
//
// The poller knows its sockets through pollable (poller.go). T is the
// owner's type: a map of T, not of an interface value, keeps a parked
// socket's entry at 16 bytes.
//
// Locks: mu guards parked, closed and the added flag of every pollReg.
// It is taken before an owner's own lock (pollable.parkable), never
// after. epfd, raw and fd are read-only; stopped is closed by stop.
type poller[T pollable] struct {
	epfd *os.File
	raw  syscall.RawConn
	fd   int

	mu      sync.Mutex
	parked  map[uint64]T // by pollReg.token
	closed  bool
	stopped chan struct{}
}

// newPoller returns a running poller, or nil when the system refuses one
// (sessions then keep a reader goroutine each).
func newPoller[T pollable]() *poller[T] {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	p := &poller[T]{epfd: f, raw: raw, fd: fd, parked: make(map[uint64]T), stopped: make(chan struct{})}
	go p.loop()
	return p
}

// setToken stores a 64-bit token in the event's data (Fd and Pad).
func setToken(ev *syscall.EpollEvent, token uint64) {
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = token
}

func token(ev *syscall.EpollEvent) uint64 { return *(*uint64)(unsafe.Pointer(&ev.Fd)) }

func (p *poller[T]) loop() {
	defer p.stop()
	events := make([]syscall.EpollEvent, 256)
	var wake []T
	var zero T
	// The callback drains the set without blocking and asks to wait for
	// the next readiness; it returns only when the file is closed.
	_ = p.raw.Read(func(uintptr) bool {
		for {
			n, err := syscall.EpollWait(p.fd, events, 0)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n == 0 {
				return false
			}
			p.mu.Lock()
			for i := range events[:n] {
				t := token(&events[i])
				if x, ok := p.parked[t]; ok {
					delete(p.parked, t)
					wake = append(wake, x)
				}
			}
			p.mu.Unlock()
			for i, x := range wake {
				go x.readLoop(false) // readable: no need to wait
				wake[i] = zero
			}
			wake = wake[:0]
		}
	})
}

// park registers x's socket, one-shot, and reports whether it did; x's
// reader goroutine may then end. The socket must have nothing buffered.
func (p *poller[T]) park(x T) bool {
	r := x.pollReg()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setToken(&ev, r.token)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !x.parkable() {
		return false
	}
	// In the table before the system call: the event may come at once.
	p.parked[r.token] = x
	op := syscall.EPOLL_CTL_MOD
	if !r.added {
		op = syscall.EPOLL_CTL_ADD
	}
	if err := syscall.EpollCtl(p.fd, op, int(r.fd), &ev); err != nil {
		delete(p.parked, r.token)
		return false
	}
	r.added = true
	return true
}

// forget removes x before its socket is closed, so that a reused
// descriptor number cannot wake it.
func (p *poller[T]) forget(x T) {
	r := x.pollReg()
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.parked, r.token)
	if r.added && !p.closed {
		_ = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_DEL, int(r.fd), nil)
		r.added = false
	}
}

// close ends the loop and wakes the parked sessions.
func (p *poller[T]) close() {
	p.mu.Lock()
	closed := p.closed
	p.closed = true
	p.mu.Unlock()
	if !closed {
		p.epfd.Close() // ends the wait in loop
	}
	<-p.stopped
}

// stop runs when the loop ends (closed, or the wait failed): parked
// sockets go on reading with a goroutine each.
func (p *poller[T]) stop() {
	p.mu.Lock()
	p.closed = true
	parked := p.parked
	p.parked = make(map[uint64]T)
	p.mu.Unlock()
	for _, x := range parked {
		go x.readLoop(true)
	}
	close(p.stopped)
}
