package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/socketfleet/socketfleet/sdk"
)

// Request and response types on the Node adapter's request/response
// channels (protocol.md §4).
const (
	wireSockets              = 0 // legacy: socket ids
	wireAllRooms             = 1
	wireRemoteJoin           = 2
	wireRemoteLeave          = 3
	wireRemoteDisconnect     = 4
	wireRemoteFetch          = 5
	wireServerSideEmit       = 6
	wireBroadcast            = 7 // msgpack
	wireBroadcastClientCount = 8
	wireBroadcastAck         = 9 // msgpack
)

// emitterUID is the uid @socket.io/redis-emitter puts on server-side emits.
const emitterUID = "emitter"

// field is one top-level value of a request or response, as JSON. In a
// msgpack message, bin values become placeholders into att.
type field struct {
	raw json.RawMessage
	att [][]byte
}

type fields map[string]field

// parseFields decodes a request or response: JSON when it starts with "{",
// msgpack otherwise, as the Node adapter decides.
func parseFields(b []byte) (fields, error) {
	if len(b) > 0 && b[0] == '{' {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		f := make(fields, len(m))
		for k, v := range m {
			f[k] = field{raw: v}
		}
		return f, nil
	}
	d := msgpack.NewDecoder(bytes.NewReader(b))
	f := fields{}
	err := decodeMap(d, func(k string) error {
		r := &reader{d: d}
		buf, err := r.value(nil)
		f[k] = field{raw: buf, att: r.attachments}
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (f fields) has(k string) bool {
	v, ok := f[k]
	return ok && len(v.raw) > 0
}

// str is a string field; numbers and booleans as JavaScript prints them
// (rooms and ids are strings in Node, but numbers do occur).
func (f fields) str(k string) (string, bool) {
	v, ok := f[k]
	if !ok {
		return "", false
	}
	return stringish(v.raw)
}

func stringish(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	if raw[0] == '{' || raw[0] == '[' {
		return "", false
	}
	return string(raw), true
}

func (f fields) num(k string) (float64, bool) {
	var n float64
	if v, ok := f[k]; ok && json.Unmarshal(v.raw, &n) == nil {
		return n, true
	}
	return 0, false
}

func (f fields) boolean(k string) bool {
	var b bool
	if v, ok := f[k]; ok {
		_ = json.Unmarshal(v.raw, &b)
	}
	return b
}

func (f fields) strs(k string) []string {
	v, ok := f[k]
	if !ok {
		return nil
	}
	var arr []json.RawMessage
	if json.Unmarshal(v.raw, &arr) != nil {
		return nil
	}
	out := make([]string, 0, len(arr))
	for _, a := range arr {
		if s, ok := stringish(a); ok {
			out = append(out, s)
		}
	}
	return out
}

// sub is a nested object field (no binary inside: opts, flags, packet
// headers).
func (f fields) sub(k string) fields {
	v, ok := f[k]
	if !ok || len(v.raw) == 0 || v.raw[0] != '{' {
		return nil
	}
	g, err := parseFields(v.raw)
	if err != nil {
		return nil
	}
	// Keep the attachments for a nested value that has placeholders
	// (packet.data of a broadcast).
	for kk, vv := range g {
		vv.att = v.att
		g[kk] = vv
	}
	return g
}

// wireRequest is a request read from the request channel.
type wireRequest struct {
	uid          string
	requestID    string
	hasRequestID bool
	typ          int
	hasOpts      bool
	rooms        []string // opts.rooms: the selection
	except       []string
	timeout      time.Duration // opts.flags.timeout (broadcast with acks)
	targets      []string      // top-level rooms: to join/leave; the selection of a legacy SOCKETS
	close        bool
	data         field // data (server-side emit) or packet.data (broadcast)
	sid, room    string
}

func parseRequest(b []byte) (*wireRequest, error) {
	f, err := parseFields(b)
	if err != nil {
		return nil, err
	}
	t, ok := f.num("type")
	if !ok {
		return nil, errors.New("request without a type")
	}
	r := &wireRequest{typ: int(t)}
	r.uid, _ = f.str("uid")
	r.requestID, _ = f.str("requestId")
	r.hasRequestID = f.has("requestId")
	r.targets = f.strs("rooms")
	r.close = f.boolean("close")
	r.sid, _ = f.str("sid")
	r.room, _ = f.str("room")
	if opts := f.sub("opts"); opts != nil {
		r.hasOpts = true
		r.rooms, r.except = opts.strs("rooms"), opts.strs("except")
		if ms, ok := opts.sub("flags").num("timeout"); ok && ms > 0 {
			r.timeout = time.Duration(ms * float64(time.Millisecond))
		}
	}
	switch r.typ {
	case wireServerSideEmit:
		r.data = f["data"]
	case wireBroadcast:
		r.data = f.sub("packet")["data"]
	}
	return r, nil
}

// event checks that a request's data is an event: a non-empty JSON array.
func (v field) event() bool {
	b := bytes.TrimSpace(v.raw)
	return len(b) > 2 && b[0] == '['
}

// orEmpty makes nil marshal as [] (the Node side iterates these arrays).
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type wireOpts struct {
	Rooms  []string `json:"rooms"`
	Except []string `json:"except"`
}

// encodeRequest renders req the way the Node adapter sends it: JSON, except
// a broadcast with acks (msgpack) and a server-side emit with binary
// attachments (msgpack too, so that they arrive as Buffers; Node decodes
// either).
func encodeRequest(uid, requestID string, req *sdk.ClusterRequest) ([]byte, error) {
	opts := &wireOpts{Rooms: orEmpty(req.Rooms), Except: orEmpty(req.Except)}
	var v any
	switch req.Type {
	case sdk.RequestFetchSockets:
		v = struct {
			UID       string    `json:"uid"`
			RequestID string    `json:"requestId"`
			Type      int       `json:"type"`
			Opts      *wireOpts `json:"opts"`
		}{uid, requestID, wireRemoteFetch, opts}
	case sdk.RequestAllRooms:
		v = struct {
			UID       string `json:"uid"`
			RequestID string `json:"requestId"`
			Type      int    `json:"type"`
		}{uid, requestID, wireAllRooms}
	case sdk.RequestSocketsJoin, sdk.RequestSocketsLeave:
		t := wireRemoteJoin
		if req.Type == sdk.RequestSocketsLeave {
			t = wireRemoteLeave
		}
		v = struct {
			UID   string    `json:"uid"`
			Type  int       `json:"type"`
			Opts  *wireOpts `json:"opts"`
			Rooms []string  `json:"rooms"`
		}{uid, t, opts, orEmpty(req.Targets)}
	case sdk.RequestDisconnectSockets:
		v = struct {
			UID   string    `json:"uid"`
			Type  int       `json:"type"`
			Opts  *wireOpts `json:"opts"`
			Close bool      `json:"close"`
		}{uid, wireRemoteDisconnect, opts, req.Close}
	case sdk.RequestServerSideEmit:
		if !req.WantAck {
			requestID = ""
		}
		if len(req.Attachments) > 0 {
			return encodeMsgpackServerSideEmit(uid, requestID, req)
		}
		v = struct {
			UID       string          `json:"uid"`
			RequestID string          `json:"requestId,omitempty"`
			Type      int             `json:"type"`
			Data      json.RawMessage `json:"data"`
		}{uid, requestID, wireServerSideEmit, req.Data}
	case sdk.RequestBroadcastAck:
		return encodeBroadcastRequest(uid, requestID, req)
	default:
		return nil, fmt.Errorf("unknown request type %d", req.Type)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", req.Type, err)
	}
	return b, nil
}

// eventValue parses an event's JSON array for msgpack encoding.
func eventValue(data []byte, attachments [][]byte) (any, error) {
	v, err := parseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	if _, ok := v.([]any); !ok {
		return nil, errors.New("event data is not a JSON array")
	}
	if err := checkPlaceholders(v, len(attachments)); err != nil {
		return nil, err
	}
	return v, nil
}

func encodeMsgpackServerSideEmit(uid, requestID string, req *sdk.ClusterRequest) ([]byte, error) {
	data, err := eventValue(req.Data, req.Attachments)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := &writer{e: msgpack.NewEncoder(&buf), attachments: req.Attachments}
	n := 3
	if requestID != "" {
		n++
	}
	w.mapLen(n)
	w.str("uid")
	w.str(uid)
	if requestID != "" {
		w.str("requestId")
		w.str(requestID)
	}
	w.str("type")
	w.err1(w.e.EncodeInt(wireServerSideEmit))
	w.str("data")
	w.value(data)
	return buf.Bytes(), w.err
}

// encodeBroadcastRequest is Node's
// {uid, requestId, type:7, packet:{type:2, data, nsp}, opts:{rooms, except, flags:{timeout}}}.
func encodeBroadcastRequest(uid, requestID string, req *sdk.ClusterRequest) ([]byte, error) {
	data, err := eventValue(req.Data, req.Attachments)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := &writer{e: msgpack.NewEncoder(&buf), attachments: req.Attachments}
	w.mapLen(5)
	w.str("uid")
	w.str(uid)
	w.str("requestId")
	w.str(requestID)
	w.str("type")
	w.err1(w.e.EncodeInt(wireBroadcast))
	w.str("packet")
	w.packet(data, nspOrRoot(req.Namespace))
	w.str("opts")
	w.opts(&broadcastOpts{rooms: req.Rooms, except: req.Except, ack: true, timeout: req.Timeout})
	return buf.Bytes(), w.err
}

// Answers this instance sends to another's request.

type wireSocket struct {
	ID        string          `json:"id"`
	Handshake json.RawMessage `json:"handshake"`
	Rooms     []string        `json:"rooms"`
	Data      json.RawMessage `json:"data"`
}

// jsonOr is raw when it is valid JSON, def otherwise (the core's socket
// data and handshake are embedded as they are).
func jsonOr(raw []byte, def string) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 || !json.Valid(raw) {
		return json.RawMessage(def)
	}
	return raw
}

func encodeFetchAnswer(requestID string, sockets []sdk.RemoteSocket) ([]byte, error) {
	out := make([]wireSocket, len(sockets))
	for i, s := range sockets {
		out[i] = wireSocket{ID: s.ID, Handshake: jsonOr(s.Handshake, "{}"), Rooms: orEmpty(s.Rooms), Data: jsonOr(s.Data, "null")}
	}
	return json.Marshal(struct {
		RequestID string       `json:"requestId"`
		Sockets   []wireSocket `json:"sockets"`
	}{requestID, out})
}

func encodeSocketIDsAnswer(requestID string, sockets []sdk.RemoteSocket) ([]byte, error) {
	ids := make([]string, len(sockets))
	for i, s := range sockets {
		ids[i] = s.ID
	}
	return json.Marshal(struct {
		RequestID string   `json:"requestId"`
		Sockets   []string `json:"sockets"`
	}{requestID, ids})
}

func encodeRoomsAnswer(requestID string, rooms []string) ([]byte, error) {
	return json.Marshal(struct {
		RequestID string   `json:"requestId"`
		Rooms     []string `json:"rooms"`
	}{requestID, orEmpty(rooms)})
}

func encodeLegacyAnswer(requestID string) ([]byte, error) {
	return json.Marshal(struct {
		RequestID string `json:"requestId"`
	}{requestID})
}

func encodeClientCountAnswer(requestID string, n int) ([]byte, error) {
	return json.Marshal(struct {
		Type        int    `json:"type"`
		RequestID   string `json:"requestId"`
		ClientCount int    `json:"clientCount"`
	}{wireBroadcastClientCount, requestID, n})
}

// encodeAckAnswer is a server-side emit's ack {type:6, requestId, data}
// (JSON, msgpack when it carries binary) or a client's ack to a broadcast
// {type:9, requestId, packet} (always msgpack, as Node sends it).
func encodeAckAnswer(typ int, requestID string, ack []byte, attachments [][]byte) ([]byte, error) {
	if len(bytes.TrimSpace(ack)) == 0 {
		ack = []byte("null")
	}
	key := "data"
	if typ == wireBroadcastAck {
		key = "packet"
	}
	if typ == wireServerSideEmit && len(attachments) == 0 {
		if !json.Valid(ack) {
			return nil, errors.New("ack is not valid JSON")
		}
		return json.Marshal(struct {
			Type      int             `json:"type"`
			RequestID string          `json:"requestId"`
			Data      json.RawMessage `json:"data"`
		}{typ, requestID, ack})
	}
	v, err := parseJSON(ack)
	if err != nil {
		return nil, fmt.Errorf("ack: %w", err)
	}
	if err := checkPlaceholders(v, len(attachments)); err != nil {
		return nil, fmt.Errorf("ack: %w", err)
	}
	var buf bytes.Buffer
	w := &writer{e: msgpack.NewEncoder(&buf), attachments: attachments}
	w.mapLen(3)
	w.str("type")
	w.err1(w.e.EncodeInt(int64(typ)))
	w.str("requestId")
	w.str(requestID)
	w.str(key)
	w.value(v)
	return buf.Bytes(), w.err
}

// Answers to this instance's requests.

// parseSockets reads a fetch answer's sockets ({id, handshake, rooms, data}).
func parseSockets(v field) []sdk.RemoteSocket {
	var arr []json.RawMessage
	if json.Unmarshal(v.raw, &arr) != nil {
		return nil
	}
	out := make([]sdk.RemoteSocket, 0, len(arr))
	for _, a := range arr {
		f, err := parseFields(a)
		if err != nil {
			continue
		}
		s := sdk.RemoteSocket{Rooms: f.strs("rooms"), Data: []byte("null"), Handshake: []byte("{}")}
		s.ID, _ = f.str("id")
		if d, ok := f["data"]; ok && len(d.raw) > 0 {
			s.Data = d.raw
		}
		if h, ok := f["handshake"]; ok && len(h.raw) > 0 {
			s.Handshake = h.raw
		}
		out = append(out, s)
	}
	return out
}

// ack turns an ack value into the JSON (placeholders included) of a
// ClusterResponse; a missing value (undefined) is null.
func (v field) ack() ([]byte, [][]byte) {
	if len(bytes.TrimSpace(v.raw)) == 0 {
		return []byte("null"), nil
	}
	return v.raw, v.att
}
