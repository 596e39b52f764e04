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
type poller struct {
	epfd *os.File
	raw  syscall.RawConn
	fd   int

	mu      sync.Mutex
	parked  map[uint64]*Session // by Session.pollToken
	closed  bool
	stopped chan struct{}
}

// newPoller returns a running poller, or nil when the system refuses one
// (sessions then keep a reader goroutine each).
func newPoller() *poller {
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
	p := &poller{epfd: f, raw: raw, fd: fd, parked: make(map[uint64]*Session), stopped: make(chan struct{})}
	go p.loop()
	return p
}

// setToken stores a 64-bit token in the event's data (Fd and Pad).
func setToken(ev *syscall.EpollEvent, token uint64) {
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = token
}

func token(ev *syscall.EpollEvent) uint64 { return *(*uint64)(unsafe.Pointer(&ev.Fd)) }

func (p *poller) loop() {
	defer p.stop()
	events := make([]syscall.EpollEvent, 256)
	var wake []*Session
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
				if s := p.parked[t]; s != nil {
					delete(p.parked, t)
					wake = append(wake, s)
				}
			}
			p.mu.Unlock()
			for i, s := range wake {
				go s.wsReadLoop(s.ws, false) // readable: no need to wait
				wake[i] = nil
			}
			wake = wake[:0]
		}
	})
}

// park registers s's socket, one-shot, and reports whether it did; s's
// reader goroutine may then end. The socket must have nothing buffered.
func (p *poller) park(s *Session, fd int) bool {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setToken(&ev, s.pollToken)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	// Checked under the poller's lock: close marks the session closed
	// before it calls forget, so a closed session is never left parked.
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return false
	}
	// In the table before the system call: the event may come at once.
	p.parked[s.pollToken] = s
	op := syscall.EPOLL_CTL_MOD
	if !s.pollAdded {
		op = syscall.EPOLL_CTL_ADD
	}
	if err := syscall.EpollCtl(p.fd, op, fd, &ev); err != nil {
		delete(p.parked, s.pollToken)
		return false
	}
	s.pollAdded = true
	return true
}

// forget removes s before its socket is closed, so that a reused
// descriptor number cannot wake it.
func (p *poller) forget(s *Session, fd int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.parked, s.pollToken)
	if s.pollAdded && !p.closed {
		_ = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_DEL, fd, nil)
		s.pollAdded = false
	}
}

// close ends the loop and wakes the parked sessions.
func (p *poller) close() {
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
// sessions go on reading with a goroutine each.
func (p *poller) stop() {
	p.mu.Lock()
	p.closed = true
	parked := p.parked
	p.parked = make(map[uint64]*Session)
	p.mu.Unlock()
	for _, s := range parked {
		go s.wsReadLoop(s.ws, true)
	}
	close(p.stopped)
}
