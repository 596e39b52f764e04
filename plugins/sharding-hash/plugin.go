package main

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/socketfleet/socketfleet/sdk"
)

type plugin struct {
	shards int
	self   int
	urls   []string
	assign func(user string, shards int) int
}

var _ sdk.Sharder = (*plugin)(nil)

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindSharding, Name: "hash", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (p *plugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "shards", Type: sdk.TypeNumber, Required: true, Description: "number of shards (≥ 1)"},
		{Name: "shard", Type: sdk.TypeNumber, Required: true, Description: "the shard this instance serves, 0-based; usually env(\"SHARD\")"},
		{Name: "urls", Type: sdk.TypeListString, Description: "URL of each shard, by index; sent to users of another shard"},
		{Name: "algorithm", Type: sdk.TypeString, Description: `"md5" (default: the scaling guide's scheme) or "rendezvous"`},
	}}
}

type config struct {
	Shards    json64   `json:"shards"`
	Shard     json64   `json:"shard"`
	URLs      []string `json:"urls"`
	Algorithm string   `json:"algorithm"`
}

// json64 accepts a JSON number or a numeric string (env() yields strings).
type json64 float64

func (n *json64) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*n = json64(f)
	return nil
}

func (p *plugin) Configure(_ context.Context, raw sdk.Config) error {
	var c config
	if err := raw.Decode(&c); err != nil {
		return err
	}
	p.shards, p.self, p.urls = int(c.Shards), int(c.Shard), c.URLs
	switch {
	case float64(p.shards) != float64(c.Shards) || p.shards < 1:
		return errors.New(`sharding "hash": shards must be a whole number ≥ 1`)
	case float64(p.self) != float64(c.Shard) || p.self < 0 || p.self >= p.shards:
		return fmt.Errorf(`sharding "hash": shard must be a whole number from 0 to %d`, p.shards-1)
	case len(p.urls) > 0 && len(p.urls) != p.shards:
		return fmt.Errorf(`sharding "hash": urls has %d entries for %d shards`, len(p.urls), p.shards)
	}
	switch c.Algorithm {
	case "", "md5":
		p.assign = md5Shard
	case "rendezvous":
		p.assign = rendezvousShard
	default:
		return fmt.Errorf(`sharding "hash": algorithm must be "md5" or "rendezvous", not %q`, c.Algorithm)
	}
	return nil
}

func (p *plugin) Assign(_ context.Context, user string) (*sdk.Assignment, error) {
	if p.assign == nil {
		return nil, errors.New("not configured")
	}
	s := p.assign(user, p.shards)
	a := &sdk.Assignment{Shard: s, Local: s == p.self}
	if len(p.urls) > 0 {
		a.URL = p.urls[s]
	}
	return a, nil
}

// md5Shard is the scaling guide's scheme: the first 8 hex digits of the
// md5 of the user id, as a number, modulo the shard count.
func md5Shard(user string, shards int) int {
	sum := md5.Sum([]byte(user))
	v, _ := strconv.ParseUint(hex.EncodeToString(sum[:4]), 16, 32)
	return int(v % uint64(shards))
}

// rendezvousShard picks the shard with the highest hash of (user, shard):
// adding a shard moves only the users whose new highest score is on it.
func rendezvousShard(user string, shards int) int {
	best, bestScore := 0, uint64(0)
	var idx [8]byte
	for i := 0; i < shards; i++ {
		h := fnv.New64a()
		_, _ = h.Write([]byte(user))
		binary.BigEndian.PutUint64(idx[:], uint64(i))
		_, _ = h.Write(idx[:])
		if score := mix(h.Sum64()); i == 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// mix spreads FNV's output (a finalizer from SplitMix64).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ (x >> 31)
}
