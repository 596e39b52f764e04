package engineio

import (
	"syscall"
	"unsafe"
)

// rawWrites: this platform writes WebSocket frames with writev on the raw
// socket.
const rawWrites = true

// maxIovec bounds one writev; the rest goes in the next call.
const maxIovec = 64

// iovecs is writev's scratch. It lives in the pooled writer, not on the
// stack: the runtime sizes new goroutines' stacks by the average in use,
// and 1 KiB more on every writing goroutine's stack raised the memory of
// every idle connection's reader.
type iovecs [maxIovec]syscall.Iovec

// writev writes bufs, skipping their first off bytes, in one system call.
func writev(iov *iovecs, fd uintptr, bufs [][]byte, off int) (int, error) {
	n := 0
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		b = b[off:]
		off = 0
		iov[n].Base = &b[0]
		iov[n].SetLen(len(b))
		if n++; n == maxIovec {
			break
		}
	}
	if n == 0 {
		return 0, nil
	}
	// A raw system call: the socket is non-blocking, so the call cannot
	// park the thread, and the scheduler need not hear of it. Announcing it
	// (syscall.Syscall) lets the runtime hand the P to another thread
	// while a write runs long, a thread switch per few deliveries.
	var r uintptr
	var errno syscall.Errno
	if n == 1 {
		r, _, errno = syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len), sendFlags, 0, 0)
	} else {
		r, _, errno = syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
	}
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// maxDirect is the most frames writeMsgs takes: a packet and its binary
// attachments, with the iovecs on the caller's stack (small enough not to
// grow a reader goroutine's, see iovecs).
const maxDirect = 4

// sendFlags are send(2)'s flags for a frame: MSG_NOSIGNAL, so that a peer
// that reset the connection costs an EPIPE and no SIGPIPE.
//
// One frame goes out with send(2) rather than write(2): a socket's send
// skips the VFS layer's write path (vfs_write and its checks and
// notifications), ~3% of a delivery's kernel time at 1 → 1,000
// (bench/README.md, "The big-room path").
const sendFlags = syscall.MSG_NOSIGNAL | syscall.MSG_DONTWAIT

// writeMsgs writes msgs' frames to fd in one system call without waiting
// (the socket is non-blocking): send(2) for one frame, writev for up to
// maxDirect. It returns the bytes written and their total; a short count
// with a nil error means the send buffer is full (EAGAIN counts as 0).
// The caller guarantees fd stays open during the call (Session.send).
func writeMsgs(fd int32, msgs []*Message) (n, total int, err error) {
	var r uintptr
	var errno syscall.Errno
	if len(msgs) == 1 {
		b := msgs[0].ws
		total = len(b)
		r, _, errno = syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), sendFlags, 0, 0)
	} else {
		var iov [maxDirect]syscall.Iovec
		for i, m := range msgs {
			iov[i].Base = &m.ws[0]
			iov[i].SetLen(len(m.ws))
			total += len(m.ws)
		}
		r, _, errno = syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(msgs)))
	}
	switch errno {
	case 0:
		return int(r), total, nil
	case syscall.EAGAIN, syscall.EINTR:
		return 0, total, nil
	}
	return 0, total, errno
}

// peekReadable is a syscall.RawConn read callback that consumes nothing:
// true once the socket has data, an error or EOF to report; false (wait
// for readability) while it has none.
func peekReadable(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN && errno != syscall.EINTR
}
