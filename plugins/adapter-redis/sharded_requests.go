package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
)

// The sharded mode's requests: ours, sent on the namespace channel and
// answered on our response channel, and other servers', handed to the
// core and answered by a reply publisher.

// serveRequests subscribes to the namespace and response channels of
// namespaces (which makes this instance count as one of their servers)
// until ctx ends.
func (s *sharded) serveRequests(ctx context.Context, namespaces []string, handle func(sdk.IncomingRequest)) error {
	h := &shHandler{fn: handle}
	var channels []string
	for _, n := range namespaces {
		n = nspOrRoot(n)
		channels = append(channels, s.mainChannel(n), s.responseChannel(n, s.uid))
	}
	s.mu.Lock()
	s.handle = h
	for _, n := range namespaces {
		s.served = append(s.served, s.mainChannel(nspOrRoot(n)))
	}
	s.mu.Unlock()
	s.addChannels(ctx, channels)
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.mu.Lock()
	if s.handle == h {
		s.handle = nil
	}
	s.mu.Unlock()
	s.removeChannels(context.Background(), channels)
	return ctx.Err()
}

// request sends req on the namespace channel and gathers the answers of
// the other servers (PUBSUB SHARDNUMSUB of that channel, minus us).
func (s *sharded) request(ctx context.Context, req sdk.ClusterRequest, answer func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	if req.Type == sdk.RequestAllRooms {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis" (sharded): all rooms: %w (Node's ClusterAdapter has no allRooms)`, sdk.ErrUnsupported)
	}
	nsp := nspOrRoot(req.Namespace)
	main := s.mainChannel(nsp)
	requestID := shRandomID()
	payload, respType, err := s.encodeRequest(nsp, requestID, &req)
	if err != nil {
		return sdk.RequestResult{}, err
	}
	if respType == 0 {
		if err := s.publish(ctx, s.rdb, main, payload).Err(); err != nil {
			return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": spublish: %w`, err)
		}
		return sdk.RequestResult{}, nil
	}

	timeout := req.Timeout
	if timeout <= 0 {
		timeout = s.timeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// We count ourselves among the servers once Redis has our subscription
	// to the namespace channel: wait for it if it was asked for.
	s.subMu.Lock()
	self := s.chans[main] > 0
	s.subMu.Unlock()
	if self && !s.confirmed(main) {
		if err := s.waitConfirmed(tctx, main); err != nil {
			return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": %w`, err)
		}
	}
	n, err := s.serverCount(tctx, main)
	if err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": server count: %w`, err)
	}
	if self {
		n-- // ourselves
	}
	if n <= 0 {
		return sdk.RequestResult{}, nil
	}
	// Answers come on our response channel: listen there (kept for later
	// requests) even for a namespace we do not serve, and not only asked
	// for but confirmed before the request goes out.
	resp := s.responseChannel(nsp, s.uid)
	if !s.confirmed(resp) {
		s.subMu.Lock()
		have := s.chans[resp] > 0
		s.subMu.Unlock()
		if !have {
			s.addChannels(tctx, []string{resp})
		}
		if err := s.waitConfirmed(tctx, resp); err != nil {
			return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": %w`, err)
		}
	}
	p := &shPending{typ: respType, ch: make(chan sdk.ClusterResponse, shMaxAnswers)}
	s.mu.Lock()
	s.pending[requestID] = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, requestID)
		s.mu.Unlock()
	}()
	if err := s.publish(tctx, s.rdb, main, payload).Err(); err != nil {
		return sdk.RequestResult{}, fmt.Errorf(`adapter "redis": spublish: %w`, err)
	}
	res := sdk.RequestResult{Expected: n}
	acksWanted, acks := 0, 0
	for res.Answered < n || acks < acksWanted {
		select {
		case r := <-p.ch:
			switch {
			case req.Type != sdk.RequestBroadcastAck:
				res.Answered++
			case r.Count:
				res.Answered++
				acksWanted += r.ClientCount
			default:
				acks++
			}
			answer(r)
		case <-tctx.Done():
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			return res, nil // the timeout: Answered < Expected (or acks missing) says it
		}
	}
	return res, nil
}

// toHandler hands a request to ServeRequests' handler, with a Respond that
// publishes to the requester's response channel when the type answers.
func (s *sharded) toHandler(in *sdk.IncomingRequest, w *shWire, nsp string) {
	s.mu.Lock()
	h := s.handle
	s.mu.Unlock()
	if h == nil {
		return
	}
	if in.Type.Answered(in.WantAck) && w.Data.RequestID != nil {
		requestID := *w.Data.RequestID
		wait := in.Timeout
		if wait <= 0 {
			wait = s.timeout
		}
		in.Respond = s.responder(in.Type, nsp, w.UID, requestID, time.Now().Add(wait))
	}
	h.fn(*in)
}

// responder returns the Respond of one request: it encodes the answer and
// queues it for the reply publisher, never blocking; late answers, answers
// beyond what the type allows and answers the queue has no room for are
// dropped.
func (s *sharded) responder(typ sdk.RequestType, nsp, requester, requestID string, deadline time.Time) func(sdk.ClusterResponse) {
	var mu sync.Mutex
	sent := 0
	channel := s.responseChannel(nsp, requester)
	return func(r sdk.ClusterResponse) {
		if time.Now().After(deadline) {
			s.count(func(m *metrics) { m.respLate.Add(1) })
			return
		}
		mu.Lock()
		if typ != sdk.RequestBroadcastAck && sent > 0 {
			mu.Unlock()
			return // one answer per server
		}
		sent++
		mu.Unlock()
		payload, err := s.encodeResponse(typ, nsp, requestID, &r)
		if err != nil {
			return
		}
		select {
		case s.out <- shReply{channel: channel, payload: payload, deadline: deadline}:
		default:
			s.count(func(m *metrics) { m.respFull.Add(1) })
		}
	}
}

// publishReplies sends our answers, whatever is queued in one pipeline.
func (s *sharded) publishReplies() {
	defer s.wg.Done()
	for {
		var batch []shReply
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.out:
			batch = append(batch, r)
		}
	drain:
		for len(batch) < maxDeliver {
			select {
			case r := <-s.out:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		pipe := s.rdb.Pipeline()
		now := time.Now()
		for _, r := range batch {
			if now.Before(r.deadline) {
				s.publish(s.ctx, pipe, r.channel, r.payload)
			} else {
				s.count(func(m *metrics) { m.respLate.Add(1) })
			}
		}
		if pipe.Len() > 0 {
			ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
			_, _ = pipe.Exec(ctx) // the requester times out; nothing better to do
			cancel()
		}
	}
}

func (s *sharded) toPending(w *shWire) {
	if w.Data.RequestID == nil {
		return
	}
	s.mu.Lock()
	p := s.pending[*w.Data.RequestID]
	s.mu.Unlock()
	if p == nil {
		return
	}
	var r sdk.ClusterResponse
	switch w.Type {
	case shFetchResponse:
		if p.typ != shFetchResponse {
			return
		}
		socks, err := shSockets(w.Data.Sockets, w.socketAttachments)
		if err != nil {
			return
		}
		r.Sockets = socks
	case shSSEResponse:
		if p.typ != shSSEResponse {
			return
		}
		r.Ack, r.AckAttachments = shAckValue(w.Data.Packet), w.attachments
	case shClientCount:
		if p.typ != shBroadcastAck {
			return
		}
		r.Count, r.ClientCount = true, w.Data.ClientCount
	case shBroadcastAck:
		if p.typ != shBroadcastAck {
			return
		}
		r.Ack, r.AckAttachments = shAckValue(w.Data.Packet), w.attachments
	}
	select {
	case p.ch <- r:
	default: // the caller is not keeping up: bounded, dropped
		s.count(func(m *metrics) { m.answerDropped.Add(1) })
	}
}

func shAckValue(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return []byte("null")
	}
	return raw
}

// shSockets parses the sockets of a FETCH_SOCKETS_RESPONSE. Binary values
// in a socket's data (msgpack bin) become what JSON.stringify makes of a
// Buffer, {"type":"Buffer","data":[...]}: RemoteSocket data is plain JSON.
func shSockets(raw json.RawMessage, attachments [][]byte) ([]sdk.RemoteSocket, error) {
	raw = buffersAsJSON(raw, attachments)
	var in []struct {
		ID        string          `json:"id"`
		Handshake json.RawMessage `json:"handshake"`
		Rooms     shStrings       `json:"rooms"`
		Data      json.RawMessage `json:"data"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, err
		}
	}
	out := make([]sdk.RemoteSocket, 0, len(in))
	for _, x := range in {
		rs := sdk.RemoteSocket{ID: x.ID, Rooms: []string(x.Rooms), Data: x.Data, Handshake: x.Handshake}
		if len(rs.Data) == 0 {
			rs.Data = []byte("null")
		}
		if len(rs.Handshake) == 0 {
			rs.Handshake = []byte("{}")
		}
		out = append(out, rs)
	}
	return out, nil
}

// buffersAsJSON replaces the placeholders of raw by what JSON.stringify
// makes of a Buffer, {"type":"Buffer","data":[...]}: for values that are
// plain JSON on our side (socket data).
func buffersAsJSON(raw []byte, attachments [][]byte) []byte {
	for i, a := range attachments {
		ph := `{"_placeholder":true,"num":` + strconv.Itoa(i) + `}`
		var b strings.Builder
		b.WriteString(`{"type":"Buffer","data":[`)
		for j, c := range a {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(c)))
		}
		b.WriteString("]}")
		raw = bytes.Replace(raw, []byte(ph), []byte(b.String()), 1)
	}
	return raw
}
