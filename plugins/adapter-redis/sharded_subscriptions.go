package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/socketfleet/socketfleet/sdk"
)

// The sharded mode's subscriptions: one connection per Redis Cluster slot
// (one in all outside a cluster) holds the namespace, response and room
// channels, and subscriber counts come from PUBSUB SHARDNUMSUB.

// slotOf is the Redis Cluster slot of a channel (0 outside a cluster, where
// one connection holds every channel).
func (s *sharded) slotOf(channel string) int {
	if !s.cluster {
		return 0
	}
	return clusterSlot(channel)
}

// addChannels subscribes to the channels not yet subscribed (each channel
// counts its reasons). go-redis remembers a subscription even when Redis
// is unreachable and makes it on reconnect, so I/O errors are not returned.
func (s *sharded) addChannels(ctx context.Context, channels []string) {
	s.run()
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	bySlot := map[int][]string{}
	for _, ch := range channels {
		s.chans[ch]++
		if s.chans[ch] == 1 {
			slot := s.slotOf(ch)
			bySlot[slot] = append(bySlot[slot], ch)
		}
	}
	for slot, chs := range bySlot {
		sl := s.slots[slot]
		if sl == nil {
			sl = s.newSlot(slot)
			s.slots[slot] = sl
			sl.subscribe(ctx, chs) // before reading: the connection then goes to the slot's node
			s.wg.Add(1)
			go sl.run()
			continue
		}
		sl.subscribe(ctx, chs)
	}
}

// removeChannels drops one reason for each channel and unsubscribes those
// left without any; a slot connection left empty is closed.
func (s *sharded) removeChannels(ctx context.Context, channels []string) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	bySlot := map[int][]string{}
	for _, ch := range channels {
		n, ok := s.chans[ch]
		if !ok {
			continue
		}
		if n > 1 {
			s.chans[ch] = n - 1
			continue
		}
		delete(s.chans, ch)
		slot := s.slotOf(ch)
		bySlot[slot] = append(bySlot[slot], ch)
	}
	for slot, chs := range bySlot {
		sl := s.slots[slot]
		if sl == nil {
			continue
		}
		if sl.unsubscribe(ctx, chs) == 0 {
			sl.close()
			delete(s.slots, slot)
		}
	}
}

// confirmed reports whether Redis has confirmed our subscription to ch.
func (s *sharded) confirmed(ch string) bool {
	s.subMu.Lock()
	sl := s.slots[s.slotOf(ch)]
	s.subMu.Unlock()
	return sl != nil && sl.isConfirmed(ch)
}

// waitConfirmed waits until Redis has confirmed our subscription to ch.
func (s *sharded) waitConfirmed(ctx context.Context, ch string) error {
	s.subMu.Lock()
	sl := s.slots[s.slotOf(ch)]
	s.subMu.Unlock()
	if sl == nil {
		return fmt.Errorf("not subscribed to %s", ch)
	}
	return sl.waitConfirmed(ctx, ch)
}

// slotDown records a slot connection's health; Status shows the first
// failing one while any is.
func (s *sharded) slotDown(slot int, err error) {
	if s.met == nil {
		return
	}
	s.subMu.Lock()
	if err == nil {
		delete(s.down, slot)
	} else {
		s.down[slot] = err
	}
	var first error
	for _, e := range s.down {
		first = e
		break
	}
	s.subMu.Unlock()
	s.met.setDown("subscription", first)
}

// shSlot is one subscription connection, read by our own loop rather than
// go-redis's Channel(): the loop sees Redis confirm each SSUBSCRIBE (a
// request waits for its response channel), reports the connection's
// health, and replaces a connection whose PING goes unanswered. On a
// cluster each connection holds the channels of one slot only: SSUBSCRIBE
// refuses channels of several slots in one command, and go-redis
// re-subscribes all of a connection's channels in one command after a
// reconnect.
type shSlot struct {
	s    *sharded
	slot int

	mu        sync.Mutex
	ps        *redis.PubSub
	closed    bool
	channels  map[string]struct{}
	confirmed map[string]struct{} // on the current connection
	changed   chan struct{}       // closed and replaced when confirmed grows
}

func (s *sharded) newSlot(slot int) *shSlot {
	return &shSlot{s: s, slot: slot, ps: s.newPubSub(),
		channels: map[string]struct{}{}, confirmed: map[string]struct{}{}, changed: make(chan struct{})}
}

func (sl *shSlot) subscribe(ctx context.Context, chs []string) {
	sl.mu.Lock()
	for _, ch := range chs {
		sl.channels[ch] = struct{}{}
	}
	ps := sl.ps
	sl.mu.Unlock()
	_ = sl.s.psSubscribe(ctx, ps, chs)
}

// unsubscribe returns how many channels the connection keeps.
func (sl *shSlot) unsubscribe(ctx context.Context, chs []string) int {
	sl.mu.Lock()
	for _, ch := range chs {
		delete(sl.channels, ch)
		delete(sl.confirmed, ch)
	}
	ps, left := sl.ps, len(sl.channels)
	sl.mu.Unlock()
	if left > 0 {
		_ = sl.s.psUnsubscribe(ctx, ps, chs)
	}
	return left
}

func (sl *shSlot) isConfirmed(ch string) bool {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	_, ok := sl.confirmed[ch]
	return ok
}

func (sl *shSlot) waitConfirmed(ctx context.Context, ch string) error {
	for {
		sl.mu.Lock()
		_, ok := sl.confirmed[ch]
		changed := sl.changed
		sl.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("subscribing to %s: %w", ch, ctx.Err())
		}
	}
}

func (sl *shSlot) confirm(ch string) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if _, wanted := sl.channels[ch]; !wanted {
		return // a late confirmation of something since unsubscribed
	}
	sl.confirmed[ch] = struct{}{}
	close(sl.changed)
	sl.changed = make(chan struct{})
}

// lost forgets the confirmations of a connection that failed (go-redis
// re-subscribes on the next one, and Redis confirms again).
func (sl *shSlot) lost() {
	sl.mu.Lock()
	clear(sl.confirmed)
	sl.mu.Unlock()
}

func (sl *shSlot) close() {
	sl.mu.Lock()
	sl.closed = true
	ps := sl.ps
	sl.mu.Unlock()
	_ = ps.Close()
}

// replace swaps in a new connection with the same channels: after an
// unanswered PING, or when Redis moved the slot to another node (it then
// unsubscribes us; on a cluster the slot map is reloaded first so the new
// connection goes to the new owner).
func (sl *shSlot) replace(reload bool) {
	if cc, ok := sl.s.rdb.(*redis.ClusterClient); ok && reload {
		cc.ReloadState(sl.s.ctx)
	}
	sl.mu.Lock()
	if sl.closed {
		sl.mu.Unlock()
		return
	}
	old := sl.ps
	sl.ps = sl.s.newPubSub()
	clear(sl.confirmed)
	ps := sl.ps
	chs := make([]string, 0, len(sl.channels))
	for ch := range sl.channels {
		chs = append(chs, ch)
	}
	sl.mu.Unlock()
	_ = old.Close()
	ctx, cancel := context.WithTimeout(sl.s.ctx, shHealthEvery)
	defer cancel()
	if len(chs) > 0 {
		_ = sl.s.psSubscribe(ctx, ps, chs)
	}
}

// run reads the connection until it is closed, handing messages to the
// dispatcher in order.
func (sl *shSlot) run() {
	s := sl.s
	defer s.wg.Done()
	defer s.slotDown(sl.slot, nil)
	backoff := backoffMin
	pinged, down := false, false
	for s.ctx.Err() == nil {
		sl.mu.Lock()
		ps, closed := sl.ps, sl.closed
		sl.mu.Unlock()
		if closed {
			return
		}
		msg, err := ps.ReceiveTimeout(s.ctx, shHealthEvery)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = true
					_ = ps.Ping(s.ctx) // a write error shows on the next read
					continue
				}
				s.slotDown(sl.slot, fmt.Errorf("no answer to PING within %v", shHealthEvery))
				down = true
				sl.replace(false)
				pinged = false
				continue
			}
			if errors.Is(err, redis.ErrClosed) {
				sl.mu.Lock()
				closed := sl.closed
				sl.mu.Unlock()
				if closed {
					return
				}
			}
			sl.lost()
			s.slotDown(sl.slot, redisCause(err))
			down, pinged = true, false
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
			}
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff, pinged = backoffMin, false
		if down {
			s.slotDown(sl.slot, nil)
			down = false
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			switch m.Kind {
			case "ssubscribe", "subscribe":
				sl.confirm(m.Channel)
			case "sunsubscribe", "unsubscribe":
				// Unasked for (we close rather than leave a slot, and drop
				// a channel from sl.channels before unsubscribing): Redis
				// moved the slot away.
				sl.mu.Lock()
				_, wanted := sl.channels[m.Channel]
				sl.mu.Unlock()
				if wanted {
					sl.replace(true)
				}
			}
		case *redis.Message:
			select {
			case s.in <- m:
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// roomsChanged subscribes to the channels of the rooms this instance now
// holds and unsubscribes from those it no longer holds (dynamic modes).
func (s *sharded) roomsChanged(ctx context.Context, changes []sdk.RoomChange) error {
	if s.submode == subStatic {
		return nil
	}
	// The net effect of the batch, in order: a room created then deleted
	// costs nothing.
	net := map[string]int{}
	var order []string
	for _, c := range changes {
		// In dynamic mode publishers send rooms that look like socket ids
		// on the namespace channel, so their room channel carries nothing.
		if s.submode == subDynamic && sdk.LooksLikeSocketID(c.Room) {
			continue
		}
		ch := s.roomChannel(nspOrRoot(c.Namespace), c.Room)
		if _, ok := net[ch]; !ok {
			order = append(order, ch)
		}
		if c.Created {
			net[ch] = 1
		} else {
			net[ch] = -1
		}
	}
	var add, del []string
	s.subMu.Lock()
	for _, ch := range order {
		has := s.rooms[ch]
		if net[ch] > 0 && !has {
			add = append(add, ch)
			s.rooms[ch] = true
		} else if net[ch] < 0 && has {
			del = append(del, ch)
			delete(s.rooms, ch)
		}
	}
	s.subMu.Unlock()
	s.removeChannels(ctx, del)
	s.addChannels(ctx, add)
	return nil
}

// subscribers is how many servers hold the namespace channels this
// instance serves (SHARDNUMSUB, summed): the outgoing queue compares it
// before and after an outage, to hold its backlog until they are back.
func (s *sharded) subscribers(ctx context.Context) (int64, error) {
	s.mu.Lock()
	channels := append([]string(nil), s.served...)
	s.mu.Unlock()
	var total int64
	for _, ch := range channels {
		n, err := s.serverCount(ctx, ch)
		if err != nil {
			return 0, err
		}
		total += int64(n)
	}
	return total, nil
}

// serverCount is PUBSUB SHARDNUMSUB of the channel; on a cluster a shard
// channel's subscribers are counted by the node they subscribed to, so the
// masters' counts are summed (as Node does).
func (s *sharded) serverCount(ctx context.Context, channel string) (int, error) {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		total := 0
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			m, err := c.PubSubShardNumSub(ctx, channel).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			total += int(m[channel])
			mu.Unlock()
			return nil
		})
		return total, err
	}
	if s.plain {
		m, err := s.rdb.PubSubNumSub(ctx, channel).Result()
		return int(m[channel]), err
	}
	m, err := s.rdb.PubSubShardNumSub(ctx, channel).Result()
	return int(m[channel]), err
}

// clusterSlot is the Redis Cluster slot of a key (here a shard channel):
// CRC16 (XMODEM) of the key, or of its hash tag (the first non-empty
// {...}), modulo 16384.
func clusterSlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
