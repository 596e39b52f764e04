package admin

import (
	"time"
)

// counters are the totals server_stats' aggregated events are the
// differences of.
type counters struct {
	opened, packetsIn, packetsOut, bytesIn, bytesOut int64
	closed                                           map[string]int64
}

type namespaceDetails struct {
	Name         string `json:"name"`
	SocketsCount int    `json:"socketsCount"`
}

// event is one of server_stats' aggregatedEvents: what happened in one
// second, by type (and subtype: a disconnection's reason).
type event struct {
	Timestamp int64  `json:"timestamp"`
	Type      string `json:"type"`
	SubType   string `json:"subType,omitempty"`
	Count     int64  `json:"count"`
}

type serverStats struct {
	ServerID            string             `json:"serverId"`
	Hostname            string             `json:"hostname"`
	PID                 int                `json:"pid"`
	Uptime              float64            `json:"uptime"`
	ClientsCount        int64              `json:"clientsCount"`
	PollingClientsCount int                `json:"pollingClientsCount"`
	AggregatedEvents    []event            `json:"aggregatedEvents"`
	Namespaces          []namespaceDetails `json:"namespaces"`
}

// SendStats sends this instance's server_stats to every admin socket of
// the cluster. The counts are the core's atomics read once; the Node
// package counts per packet instead, which we need not: the UI plots per
// second, and everything since the last report goes in this second.
func (a *Admin) SendStats() {
	now := time.Now()
	st := &a.srv.Stats
	cur := counters{packetsIn: st.PacketsIn.Load(), packetsOut: st.PacketsOut.Load(), closed: st.Closed()}
	stats := serverStats{ServerID: a.serverID, Hostname: a.hostname, PID: a.pid,
		Uptime: now.Sub(a.started).Seconds(), ClientsCount: st.Connections.Load(),
		AggregatedEvents: []event{}}
	if a.eng != nil {
		cur.opened = a.eng.Opened.Load()
		for _, s := range a.eng.Sessions() {
			if s.Transport() == "polling" {
				stats.PollingClientsCount++
			}
		}
	}
	for _, ns := range a.srv.Namespaces() {
		cur.bytesIn += ns.Stats.BytesIn.Load()
		cur.bytesOut += ns.Stats.BytesOut.Load()
		stats.Namespaces = append(stats.Namespaces, namespaceDetails{Name: ns.Name(), SocketsCount: ns.SocketCount()})
	}
	ts := now.Truncate(time.Second).UnixMilli()
	add := func(typ, sub string, n int64) {
		if n > 0 {
			stats.AggregatedEvents = append(stats.AggregatedEvents, event{Timestamp: ts, Type: typ, SubType: sub, Count: n})
		}
	}
	p := &a.prev
	add("rawConnection", "", cur.opened-p.opened)
	for reason, n := range cur.closed {
		add("rawDisconnection", reason, n-p.closed[reason])
	}
	add("packetsIn", "", cur.packetsIn-p.packetsIn)
	add("packetsOut", "", cur.packetsOut-p.packetsOut)
	add("bytesIn", "", cur.bytesIn-p.bytesIn)
	add("bytesOut", "", cur.bytesOut-p.bytesOut)
	a.prev = cur
	a.emitAll("server_stats", stats)
}
