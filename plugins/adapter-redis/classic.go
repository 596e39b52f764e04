package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// classic is the mode of Node's createAdapter: broadcasts on
// PUBLISH/PSUBSCRIBE channels, requests and responses on their own channels.
type classic struct {
	rdb *redis.Client
	key string
	uid string
}

func newClassic(rdb *redis.Client, key, uid string) *classic {
	return &classic{rdb: rdb, key: key, uid: uid}
}

func (c *classic) close() error { return c.rdb.Close() }

// channel is where the Node adapter publishes a broadcast: the room channel
// for exactly one room, the namespace channel otherwise.
func channel(key string, m *sdk.AdapterMessage) string {
	ch := key + "#" + nspOrRoot(m.Namespace) + "#"
	if len(m.Rooms) == 1 {
		ch += m.Rooms[0] + "#"
	}
	return ch
}

// flush sends the batch in one pipeline (one round trip).
func (c *classic) flush(ctx context.Context, batch []sdk.AdapterMessage, skipped func(error)) error {
	pipe := c.rdb.Pipeline()
	for i := range batch {
		m := &batch[i]
		payload, err := encodeMessage(c.uid, m)
		if err != nil {
			skipped(fmt.Errorf("message %d: %w", i, err))
			continue
		}
		pipe.Publish(ctx, channel(c.key, m), payload)
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf(`adapter "redis": publish: %w`, err)
		}
	}
	return nil
}

// Subscribe listens on <key>#* (every namespace and room channel). go-redis
// reconnects and re-subscribes by itself, so this only returns when ctx ends
// or deliver fails.
func (c *classic) subscribe(ctx context.Context, deliver func([]sdk.AdapterMessage) error) error {
	key, uid := c.key, c.uid
	ps := c.rdb.PSubscribe(ctx, globEscape(key)+"#*")
	defer ps.Close()
	ch := ps.Channel(redis.WithChannelSize(4 * maxDeliver))
	prefix := key + "#"
	batch := make([]sdk.AdapterMessage, 0, maxDeliver)
	add := func(rm *redis.Message) {
		if m, ok := accept(prefix, uid, rm); ok {
			batch = append(batch, m)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case rm, ok := <-ch:
			if !ok {
				return ctx.Err()
			}
			add(rm)
		drain:
			for len(batch) < maxDeliver {
				select {
				case rm, ok := <-ch:
					if !ok {
						break drain
					}
					add(rm)
				default:
					break drain
				}
			}
		}
		if len(batch) > 0 {
			if err := deliver(batch); err != nil {
				return err
			}
			batch = make([]sdk.AdapterMessage, 0, maxDeliver)
		}
	}
}

// accept decodes one Redis message and applies the Node adapter's receiver
// rules: drop our own messages and those whose channel does not match the
// packet's namespace. (The "room unknown locally" rule is left to the core:
// a broadcast to a room with no local member reaches nobody.)
func accept(prefix, uid string, rm *redis.Message) (sdk.AdapterMessage, bool) {
	if !strings.HasPrefix(rm.Channel, prefix) {
		return sdk.AdapterMessage{}, false
	}
	d, err := decodeMessage([]byte(rm.Payload))
	if err != nil || d.uid == uid || (d.typ != packetEvent && d.typ != 5) {
		return sdk.AdapterMessage{}, false
	}
	if !strings.HasPrefix(rm.Channel[len(prefix):], d.msg.Namespace+"#") {
		return sdk.AdapterMessage{}, false
	}
	return d.msg, true
}

// globEscape quotes the glob characters of a PSUBSCRIBE pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *classic) request(context.Context, sdk.ClusterRequest, func(sdk.ClusterResponse)) (sdk.RequestResult, error) {
	return sdk.RequestResult{}, errors.New(`adapter "redis": requests are not implemented yet`)
}

func (c *classic) serveRequests(ctx context.Context, _ []string, _ func(sdk.IncomingRequest)) error {
	<-ctx.Done()
	return ctx.Err()
}

func (c *classic) roomsChanged(context.Context, []sdk.RoomChange) error { return nil }
