package main

// The accounting of socketbench fleet (bench/README.md, "Fleet changes"):
// what one client received, against what was published to its room after
// it first joined. Pure functions, tested in fleet_test.go.

// Publish outcomes, one per seq.
const (
	pubPending int8 = 0  // not finished (never left when the run ends)
	pubOK      int8 = 1  // the API answered 202: the message was broadcast
	pubFailed  int8 = -1 // not sent: refused, or no answer after the retries
)

// fleetLedger is what one client received, in arrival order: each seq at
// most once in got, a second arrival a duplicate, an arrival below the
// highest seq seen so far (first arrival) out of order.
type fleetLedger struct {
	got        map[int]bool
	high       int // highest seq received; -1 none
	dup        int
	outOfOrder int
	arrivals   int
	dupSeqs    []int // the seq of each duplicate arrival
}

func newFleetLedger() *fleetLedger { return &fleetLedger{got: map[int]bool{}, high: -1} }

// receive notes one arrival of seq.
func (l *fleetLedger) receive(seq int) {
	l.arrivals++
	if l.got[seq] {
		l.dup++
		l.dupSeqs = append(l.dupSeqs, seq)
		return
	}
	l.got[seq] = true
	if seq < l.high {
		l.outOfOrder++
	}
	if seq > l.high {
		l.high = seq
	}
}

func (l *fleetLedger) has(seq int) bool { return l.got[seq] }

// fleetRoomOf is the room index of message seq: messages go to the rooms
// in turn.
func fleetRoomOf(seq, rooms int) int { return seq % rooms }

// fleetTally is one client's account (or a sum of them).
type fleetTally struct {
	Expected   int `json:"expected"`
	Received   int `json:"received"` // expected messages that arrived
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	OutOfOrder int `json:"out_of_order"`
	// Arrivals that were not expected: before the first join, of a
	// message whose publish was not confirmed, or of another room.
	Unexpected int `json:"unexpected"`
}

func (t *fleetTally) add(o fleetTally) {
	t.Expected += o.Expected
	t.Received += o.Received
	t.Lost += o.Lost
	t.Duplicated += o.Duplicated
	t.OutOfOrder += o.OutOfOrder
	t.Unexpected += o.Unexpected
}

// tallyFleetClient accounts one client: first is the first seq it is
// accountable for (the publisher's count when its first join was
// acknowledged; -1 = never joined), room its room index, sent the publish
// outcome of every seq. lostSeq, when not nil, is called with each seq
// lost.
func tallyFleetClient(l *fleetLedger, first, room, rooms int, sent []int8, lostSeq func(int)) fleetTally {
	var t fleetTally
	t.Duplicated, t.OutOfOrder = l.dup, l.outOfOrder
	expected := func(seq int) bool {
		return first >= 0 && seq >= first && seq < len(sent) && sent[seq] == pubOK && fleetRoomOf(seq, rooms) == room
	}
	if first >= 0 {
		// The first seq of this room at or after first.
		s := first + ((room-fleetRoomOf(first, rooms))%rooms+rooms)%rooms
		for ; s < len(sent); s += rooms {
			if sent[s] != pubOK {
				continue
			}
			t.Expected++
			if l.has(s) {
				t.Received++
			} else {
				t.Lost++
				if lostSeq != nil {
					lostSeq(s)
				}
			}
		}
	}
	for seq := range l.got {
		if !expected(seq) {
			t.Unexpected++
		}
	}
	return t
}

// fleetLastExpected is the last seq a client of room (accountable from
// first) must receive: the last confirmed message of its room, or -1.
func fleetLastExpected(first, room, rooms int, sent []int8) int {
	if first < 0 {
		return -1
	}
	for s := len(sent) - 1; s >= first; s-- {
		if fleetRoomOf(s, rooms) == room && sent[s] == pubOK {
			return s
		}
	}
	return -1
}
