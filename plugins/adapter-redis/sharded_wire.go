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

// The sharded mode's wire format, ClusterAdapter's messages: decoded from
// JSON or msgpack, encoded as JSON or, when they carry binary, msgpack.

// shPacketData is packet.data of a broadcast's {type:2, data:[...]}.
func shPacketData(packet json.RawMessage) ([]byte, error) {
	var p struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(packet, &p); err != nil {
		return nil, err
	}
	if !isJSONArray(p.Data) {
		return nil, errors.New("packet.data is not an array")
	}
	return p.Data, nil
}

// shWire is a received ClusterAdapter message or response, JSON or msgpack.
type shWire struct {
	Type int    `json:"type"`
	UID  string `json:"uid"`
	Nsp  string `json:"nsp"`
	Data struct {
		Packet    json.RawMessage `json:"packet"`
		RequestID *string         `json:"requestId"`
		Opts      struct {
			Rooms  shStrings `json:"rooms"`
			Except shStrings `json:"except"`
			Flags  shFlags   `json:"flags"`
		} `json:"opts"`
		Rooms       shStrings       `json:"rooms"`
		Close       bool            `json:"close"`
		Sockets     json.RawMessage `json:"sockets"`
		ClientCount int             `json:"clientCount"`
	} `json:"data"`
	// binary values of Packet and Sockets (msgpack only), in placeholder
	// order
	attachments       [][]byte
	socketAttachments [][]byte
}

// shStrings is a list of strings that also takes one string, numbers and
// booleans (rooms are whatever JavaScript values Node was given).
type shStrings []string

func (l *shStrings) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var items []any
	switch t := v.(type) {
	case []any:
		items = t
	case nil:
		*l = nil
		return nil
	default:
		items = []any{t}
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		switch x := it.(type) {
		case string:
			out = append(out, x)
		case nil:
		default:
			out = append(out, fmt.Sprint(x))
		}
	}
	*l = out
	return nil
}

// shFlags are the broadcast flags we use: volatile, and the ack timeout (ms
// on the wire).
type shFlags struct {
	Volatile bool
	Timeout  time.Duration
}

func (f *shFlags) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil // not an object: no flags
	}
	f.Volatile = m["volatile"] == true
	if n, ok := m["timeout"].(float64); ok && n > 0 {
		f.Timeout = time.Duration(n * float64(time.Millisecond))
	}
	return nil
}

// shDecode parses a message: JSON when it starts with '{', as Node sniffs,
// msgpack otherwise.
func shDecode(b []byte) (*shWire, error) {
	var w shWire
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, err
		}
	} else if err := shDecodeMsgpack(b, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

func shDecodeMsgpack(b []byte, w *shWire) error {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	return decodeMap(d, func(k string) error {
		switch k {
		case "type":
			v, err := d.DecodeInt64()
			w.Type = int(v)
			return err
		case "uid":
			v, err := decodeStringish(d)
			w.UID = v
			return err
		case "nsp":
			v, err := decodeStringish(d)
			w.Nsp = v
			return err
		case "data":
			return decodeMap(d, func(k string) error { return shDecodeData(d, w, k) })
		}
		return d.Skip()
	})
}

func shDecodeData(d *msgpack.Decoder, w *shWire, k string) error {
	var err error
	switch k {
	case "packet":
		r := &reader{d: d}
		w.Data.Packet, err = r.value(nil)
		w.attachments = r.attachments
	case "sockets":
		r := &reader{d: d}
		w.Data.Sockets, err = r.value(nil)
		w.socketAttachments = r.attachments
	case "requestId":
		var v string
		v, err = decodeStringish(d)
		w.Data.RequestID = &v
	case "rooms":
		w.Data.Rooms, err = decodeStrings(d)
	case "close":
		var v any
		v, err = d.DecodeInterface()
		w.Data.Close = v == true
	case "clientCount":
		var v int64
		v, err = d.DecodeInt64()
		w.Data.ClientCount = int(v)
	case "opts":
		var o broadcastOpts
		err = decodeOpts(d, &o)
		w.Data.Opts.Rooms, w.Data.Opts.Except = o.rooms, o.except
		w.Data.Opts.Flags = shFlags{Volatile: o.volatile, Timeout: o.timeout}
	default:
		err = d.Skip()
	}
	return err
}

// ---- wire encoding

// shObj is an object of key, value pairs.
func shObj(kv ...any) *object {
	o := &object{keys: make([]string, 0, len(kv)/2), vals: make([]any, 0, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		o.keys = append(o.keys, kv[i].(string))
		o.vals = append(o.vals, kv[i+1])
	}
	return o
}

// shEncode renders {type, data, uid, nsp}: msgpack when attachments are
// given (the types that may carry binary and do), JSON otherwise.
func (s *sharded) shEncode(typ int, nsp string, data *object, attachments [][]byte) ([]byte, error) {
	msg := shObj("type", int64(typ), "data", data, "uid", s.uid, "nsp", nsp)
	if len(attachments) == 0 && !s.msgpackOnly {
		return appendJSON(make([]byte, 0, 256), msg)
	}
	return encodeValue(msg, attachments)
}

// encodeBroadcast renders a BROADCAST: without requestID a plain one, with
// it one whose clients acknowledge within timeout.
func (s *sharded) encodeBroadcast(m *sdk.AdapterMessage, requestID string, timeout time.Duration) ([]byte, error) {
	if !isJSONArray(m.Data) {
		return nil, errors.New("message data is not a JSON array")
	}
	packet := eventPacket{data: rawJSON(m.Data)}
	opts := &broadcastOpts{rooms: m.Rooms, except: m.Except, volatile: m.Volatile, ack: timeout > 0, timeout: timeout}
	data := shObj("packet", packet, "opts", opts)
	if requestID != "" {
		data = shObj("packet", packet, "requestId", requestID, "opts", opts)
	}
	return s.shEncode(shBroadcast, nspOrRoot(m.Namespace), data, m.Attachments)
}

// encodeRequest renders a request; respType is the response type that
// answers it, 0 when none does.
func (s *sharded) encodeRequest(nsp, requestID string, req *sdk.ClusterRequest) (payload []byte, respType int, err error) {
	opts := func() *broadcastOpts { return &broadcastOpts{rooms: req.Rooms, except: req.Except} }
	switch req.Type {
	case sdk.RequestFetchSockets:
		payload, err = s.shEncode(shFetchSockets, nsp, shObj("opts", opts(), "requestId", requestID), nil)
		respType = shFetchResponse
	case sdk.RequestSocketsJoin, sdk.RequestSocketsLeave:
		typ := shSocketsJoin
		if req.Type == sdk.RequestSocketsLeave {
			typ = shSocketsLeave
		}
		payload, err = s.shEncode(typ, nsp, shObj("opts", opts(), "rooms", req.Targets), nil)
	case sdk.RequestDisconnectSockets:
		payload, err = s.shEncode(shDisconnect, nsp, shObj("opts", opts(), "close", req.Close), nil)
	case sdk.RequestServerSideEmit:
		if !isJSONArray(req.Data) {
			return nil, 0, errors.New(`adapter "redis": server-side emit data is not a JSON array`)
		}
		data := shObj("packet", rawJSON(req.Data))
		if req.WantAck {
			data = shObj("requestId", requestID, "packet", rawJSON(req.Data))
			respType = shSSEResponse
		}
		payload, err = s.shEncode(shServerSideEmit, nsp, data, req.Attachments)
	case sdk.RequestBroadcastAck:
		timeout := req.Timeout
		if timeout <= 0 {
			timeout = s.timeout
		}
		req.Timeout = timeout
		payload, err = s.encodeBroadcast(&sdk.AdapterMessage{Namespace: nsp, Rooms: req.Rooms, Except: req.Except,
			Data: req.Data, Attachments: req.Attachments}, requestID, timeout)
		respType = shBroadcastAck
	default:
		return nil, 0, fmt.Errorf(`adapter "redis": request type %v: %w`, req.Type, sdk.ErrUnsupported)
	}
	if err != nil {
		return nil, 0, fmt.Errorf(`adapter "redis": %v request: %w`, req.Type, err)
	}
	return payload, respType, nil
}

// encodeResponse renders our answer to a request of type typ.
func (s *sharded) encodeResponse(typ sdk.RequestType, nsp, requestID string, r *sdk.ClusterResponse) ([]byte, error) {
	ack := func() rawJSON {
		if len(r.Ack) == 0 {
			return rawJSON("null")
		}
		return rawJSON(r.Ack)
	}
	switch typ {
	case sdk.RequestFetchSockets:
		socks := make([]any, 0, len(r.Sockets))
		for _, x := range r.Sockets {
			hs, data := rawJSON(x.Handshake), rawJSON(x.Data)
			if len(hs) == 0 {
				hs = rawJSON("{}")
			}
			if len(data) == 0 {
				data = rawJSON("null")
			}
			socks = append(socks, shObj("id", x.ID, "handshake", hs, "rooms", x.Rooms, "data", data))
		}
		return s.shEncode(shFetchResponse, nsp, shObj("requestId", requestID, "sockets", socks), nil)
	case sdk.RequestServerSideEmit:
		return s.shEncode(shSSEResponse, nsp, shObj("requestId", requestID, "packet", ack()), r.AckAttachments)
	case sdk.RequestBroadcastAck:
		if r.Count {
			return s.shEncode(shClientCount, nsp, shObj("requestId", requestID, "clientCount", int64(r.ClientCount)), nil)
		}
		return s.shEncode(shBroadcastAck, nsp, shObj("requestId", requestID, "packet", ack()), r.AckAttachments)
	}
	return nil, fmt.Errorf("no answer to %v", typ)
}
