package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Drain configures graceful shutdown: on SIGTERM the instance stops taking
// new clients, tells every socket it is going away, and closes the
// connections paced over Timeout (with jitter) so a fleet sees no
// reconnect storm.
type Drain struct {
	Timeout time.Duration // the drain window, default 30s
	Event   string        // default "server:maintenance"
	Message string        // default "Server maintenance, please reconnect"
	Code    string        // default "SERVER_DRAINING"
}

// LoadShedding refuses new handshakes (503 + Retry-After) while memory is
// above a threshold; connected sockets keep working.
type LoadShedding struct {
	MaxHeap        int64   // bytes of live Go heap (as of the last collection); 0 = no absolute limit
	MaxHeapPercent float64 // % of Limit; 0 = none
	MaxRSS         int64
	MaxRSSPercent  float64
	Limit          int64 // bytes the percentages refer to; 0 = the cgroup limit, else physical memory
	CheckInterval  time.Duration
	RetryAfter     time.Duration
}

// Enabled reports whether any threshold is set.
func (l *LoadShedding) Enabled() bool {
	return l != nil && (l.MaxHeap > 0 || l.MaxHeapPercent > 0 || l.MaxRSS > 0 || l.MaxRSSPercent > 0)
}

var drainSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "timeout"}, {Name: "event"}, {Name: "message"}, {Name: "code"}},
}

var sheddingSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_heap"}, {Name: "max_rss"}, {Name: "limit"}, {Name: "check_interval"}, {Name: "retry_after"},
	},
}

func defaultDrain() Drain {
	return Drain{Timeout: 30 * time.Second, Event: "server:maintenance",
		Message: "Server maintenance, please reconnect", Code: "SERVER_DRAINING"}
}

func (d *decoder) drain(b *hcl.Block, dr *Drain) {
	*dr = defaultDrain()
	if b == nil {
		return
	}
	c := d.content(b.Body, drainSchema)
	d.duration(c.Attributes["timeout"], &dr.Timeout, false)
	if a := c.Attributes["event"]; a != nil && d.str(a, &dr.Event) {
		d.eventName(dr.Event, a.Expr.Range(), a.Range)
	}
	if a := c.Attributes["message"]; a != nil {
		d.str(a, &dr.Message)
	}
	if a := c.Attributes["code"]; a != nil {
		d.str(a, &dr.Code)
	}
}

func (d *decoder) shedding(b *hcl.Block) *LoadShedding {
	if b == nil {
		return nil
	}
	ls := &LoadShedding{CheckInterval: time.Second, RetryAfter: 10 * time.Second}
	c := d.content(b.Body, sheddingSchema)
	d.memLimit(c.Attributes["max_heap"], &ls.MaxHeap, &ls.MaxHeapPercent)
	d.memLimit(c.Attributes["max_rss"], &ls.MaxRSS, &ls.MaxRSSPercent)
	d.size(c.Attributes["limit"], &ls.Limit)
	d.duration(c.Attributes["check_interval"], &ls.CheckInterval, true)
	d.duration(c.Attributes["retry_after"], &ls.RetryAfter, true)
	if !ls.Enabled() {
		d.errorf(b.DefRange.Ptr(), nil, "No load-shedding threshold",
			"Set max_heap and/or max_rss, as a size (\"2GB\") or a percentage of the memory limit (\"80%%\").")
	}
	return ls
}

// memLimit reads "80%" (of the limit) or a size.
func (d *decoder) memLimit(attr *hcl.Attribute, abs *int64, pct *float64) {
	if attr == nil {
		return
	}
	var s string
	v, diags := attr.Expr.Value(d.ctx)
	if !diags.HasErrors() && v.Type().FriendlyName() == "string" && !v.IsNull() {
		s = v.AsString()
	}
	if strings.HasSuffix(s, "%") {
		f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		if err != nil || f <= 0 || f > 100 {
			d.attrError(attr, "Invalid percentage", "%q: use a percentage between 0 and 100, such as \"80%%\".", s)
			return
		}
		*pct = f
		return
	}
	d.size(attr, abs)
}
