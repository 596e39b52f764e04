package sdk

import "unicode/utf16"

// LooksLikeSocketID reports whether room has the shape of a Socket.IO
// socket id by Node's test (@socket.io/redis-adapter's looksLikeASocketId,
// which picks a sharded broadcast's channel): a string of 20 UTF-16 code
// units, whatever its characters, as JavaScript counts a string's length.
// Both sides of a mixed fleet must judge a room alike, so this is the one
// test; an invalid UTF-8 byte counts as one unit (U+FFFD).
func LooksLikeSocketID(room string) bool {
	// A code unit takes 1 to 3 bytes of UTF-8: cheap bounds first.
	if len(room) < 20 || len(room) > 3*20 {
		return false
	}
	n := 0
	for _, r := range room {
		n += utf16.RuneLen(r)
	}
	return n == 20
}
