//go:build !linux

package engineio

// rawWrites: elsewhere WebSocket frames go through net.Buffers on the
// writer goroutine (no inline writes).
const rawWrites = false

type iovecs struct{}

func writev(*iovecs, uintptr, [][]byte, int) (int, error) {
	panic("engineio: no raw writes on this platform")
}

const maxDirect = 0

func writeMsgs(int32, []*Message) (int, int, error) {
	panic("engineio: no raw writes on this platform")
}

func peekReadable(uintptr) bool { return true }
