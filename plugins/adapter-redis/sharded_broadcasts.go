package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// The sharded mode's broadcasts: published with SPUBLISH, and every received
// message routed (broadcasts to Subscribe, requests and answers on).

// flush publishes the batch with SPUBLISH in one pipeline (on a cluster
// go-redis splits it by node).
func (s *sharded) flush(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error {
	pipe := s.rdb.Pipeline()
	for i := range batch {
		m := &batch[i]
		payload, err := s.encodeBroadcast(m, "", 0)
		if err != nil {
			skipped(fmt.Errorf("message %d: %w", i, err))
			continue
		}
		pipe.SPublish(ctx, s.broadcastChannel(m), payload)
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf(`adapter "redis": spublish: %w`, err)
		}
	}
	return nil
}

// subscribe delivers the broadcasts that reach this instance, on the
// namespace channels of the namespaces ServeRequests names (it subscribes
// them; until then only room channels deliver) and on the room channels.
// The latest call receives them.
func (s *sharded) subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	sk := &shSink{ch: make(chan sdk.AdapterMessage, shInbox), done: make(chan struct{})}
	s.mu.Lock()
	s.sink = sk
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.sink == sk {
			s.sink = nil
		}
		s.mu.Unlock()
		close(sk.done)
	}()
	batch := make([]sdk.AdapterMessage, 0, maxDeliver)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return errors.New(`adapter "redis": closed`)
		case m := <-sk.ch:
			batch = append(batch, m)
		drain:
			for len(batch) < maxDeliver {
				select {
				case m := <-sk.ch:
					batch = append(batch, m)
				default:
					break drain
				}
			}
		}
		if err := deliver(batch); err != nil {
			return err
		}
		batch = make([]sdk.AdapterMessage, 0, maxDeliver)
	}
}

// dispatch routes every received message: broadcasts to Subscribe,
// requests to ServeRequests' handler, answers to the waiting Request.
func (s *sharded) dispatch() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case rm := <-s.in:
			s.route(rm)
		}
	}
}

func (s *sharded) route(rm *redis.Message) {
	w, err := shDecode([]byte(rm.Payload))
	if err != nil || w.UID == s.uid {
		return
	}
	nsp := w.Nsp
	if nsp == "" {
		nsp = "/"
	}
	// The namespace of the channel must be the message's (ClusterAdapter
	// drops messages of another namespace).
	if !strings.HasPrefix(rm.Channel, s.key+"#"+nsp+"#") {
		return
	}
	s.routeWire(w, nsp)
}

// routeWire routes a decoded message of another server: broadcasts to
// Subscribe, requests to ServeRequests' handler, answers to the waiting
// Request.
func (s *sharded) routeWire(w *shWire, nsp string) {
	switch w.Type {
	case shBroadcast:
		packetData, err := shPacketData(w.Data.Packet)
		if err != nil {
			return
		}
		if w.Data.RequestID == nil {
			s.toSink(sdk.AdapterMessage{Namespace: nsp, Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except,
				Data: packetData, Attachments: w.attachments, Volatile: w.Data.Opts.Flags.Volatile})
			return
		}
		in := sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestBroadcastAck, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Data: packetData, Attachments: w.attachments,
			Timeout: w.Data.Opts.Flags.Timeout}}
		s.toHandler(&in, w, nsp)
	case shSocketsJoin, shSocketsLeave:
		typ := sdk.RequestSocketsJoin
		if w.Type == shSocketsLeave {
			typ = sdk.RequestSocketsLeave
		}
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: typ, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Targets: w.Data.Rooms}}, w, nsp)
	case shDisconnect:
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestDisconnectSockets, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Close: w.Data.Close}}, w, nsp)
	case shFetchSockets:
		if w.Data.RequestID == nil {
			return
		}
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestFetchSockets, Namespace: nsp,
			Rooms: w.Data.Opts.Rooms, Except: w.Data.Opts.Except, Timeout: w.Data.Opts.Flags.Timeout}}, w, nsp)
	case shServerSideEmit:
		if !isJSONArray(w.Data.Packet) {
			return
		}
		s.toHandler(&sdk.IncomingRequest{ClusterRequest: sdk.ClusterRequest{Type: sdk.RequestServerSideEmit, Namespace: nsp,
			Data: w.Data.Packet, Attachments: w.attachments, WantAck: w.Data.RequestID != nil}}, w, nsp)
	case shFetchResponse, shSSEResponse, shClientCount, shBroadcastAck:
		s.toPending(w)
	}
	// Heartbeats and ADAPTER_CLOSE: ClusterAdapterWithHeartbeat's, not the
	// sharded adapter's; nothing to do.
}

func (s *sharded) toSink(m sdk.AdapterMessage) {
	s.mu.Lock()
	sk := s.sink
	s.mu.Unlock()
	if sk == nil {
		return // nobody subscribed: nothing to deliver to
	}
	// Blocking here holds back the readers (and go-redis's buffers) while
	// the core is slow, rather than dropping broadcasts.
	select {
	case sk.ch <- m:
	case <-sk.done:
	case <-s.ctx.Done():
	}
}
