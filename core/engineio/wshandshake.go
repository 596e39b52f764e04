package engineio

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// acceptGUID is appended to the client's key for Sec-WebSocket-Accept
// (RFC 6455 §1.3).
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// upgrade runs the server side of the WebSocket opening handshake (RFC 6455
// §4.2) and returns the connection; hdr goes out on
// the 101 (the sticky-session cookies, CORS). No subprotocol and no
// extension is ever negotiated. On failure the request has its answer.
// The Origin was checked in ServeHTTP.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, hdr http.Header) (net.Conn, error) {
	if r.Method != http.MethodGet {
		return nil, refuseUpgrade(w, http.StatusMethodNotAllowed, "request method is not GET")
	}
	if !hasToken(r.Header["Connection"], "upgrade") {
		return nil, refuseUpgrade(w, http.StatusBadRequest, "'upgrade' token not found in 'Connection' header")
	}
	if !hasToken(r.Header["Upgrade"], "websocket") {
		return nil, refuseUpgrade(w, http.StatusBadRequest, "'websocket' token not found in 'Upgrade' header")
	}
	if v := r.Header["Sec-Websocket-Version"]; len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		// RFC 6455 §4.4: name the version this server speaks.
		w.Header().Set("Sec-WebSocket-Version", "13")
		return nil, refuseUpgrade(w, http.StatusBadRequest, "unsupported version: 'Sec-WebSocket-Version' must be 13")
	}
	key := r.Header.Get("Sec-Websocket-Key")
	if !validKey(key) {
		return nil, refuseUpgrade(w, http.StatusBadRequest, "'Sec-WebSocket-Key' must be 16 bytes in base64")
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, refuseUpgrade(w, http.StatusInternalServerError, "the connection cannot be taken over")
	}
	if brw != nil && brw.Reader != nil && brw.Reader.Buffered() > 0 {
		// Frames before the 101: not a client that waits for it.
		conn.Close()
		return nil, errors.New("websocket: client sent data before the handshake completed")
	}
	resp := make([]byte, 0, 160+headerSize(hdr))
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = appendAccept(resp, key)
	resp = append(resp, "\r\n"...)
	for k, vs := range hdr {
		for _, v := range vs {
			resp = appendHeaderLine(resp, k, v)
		}
	}
	resp = append(resp, "\r\n"...)
	if _, err := conn.Write(resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket: writing the 101: %w", err)
	}
	return conn, nil
}

// refuseUpgrade answers a handshake that cannot become a WebSocket with
// status and reason, in plain text.
func refuseUpgrade(w http.ResponseWriter, status int, reason string) error {
	http.Error(w, "websocket: "+reason, status)
	return errors.New("websocket: " + reason)
}

// hasToken reports whether a comma-separated header (all its lines) holds
// token, ignoring case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// validKey reports whether key is 16 bytes in base64 (RFC 6455 §4.1).
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	var b [18]byte
	n, err := base64.StdEncoding.Decode(b[:], []byte(key))
	return err == nil && n == 16
}

// appendAccept appends Sec-WebSocket-Accept's value for key (24 bytes).
func appendAccept(dst []byte, key string) []byte {
	var in [24 + len(acceptGUID)]byte
	copy(in[copy(in[:], key):], acceptGUID)
	sum := sha1.Sum(in[:])
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// appendHeaderLine appends "k: v\r\n", with control bytes in v (a line
// break would end the response early) as spaces.
func appendHeaderLine(dst []byte, k, v string) []byte {
	dst = append(dst, k...)
	dst = append(dst, ": "...)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' || c == 0x7F {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, "\r\n"...)
}
