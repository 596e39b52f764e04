package main

import (
	"context"
	"strconv"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// Vectors computed with the scaling guide's JavaScript:
// parseInt(md5(userId).substring(0, 8), 16) % TOTAL_SHARDS.
func TestMD5MatchesTheGuide(t *testing.T) {
	for _, v := range []struct {
		user string
		of4  int
		of7  int
	}{
		{"alice", 2, 3}, {"bob", 0, 5}, {"user-42", 3, 2}, {"12345", 2, 0}, {"émile", 0, 2},
	} {
		if got := md5Shard(v.user, 4); got != v.of4 {
			t.Errorf("%s of 4: %d, want %d", v.user, got, v.of4)
		}
		if got := md5Shard(v.user, 7); got != v.of7 {
			t.Errorf("%s of 7: %d, want %d", v.user, got, v.of7)
		}
	}
}

// Adding a fifth shard moves about 1/5 of the users with rendezvous hashing
// (and about 4/5 with the modulo scheme); measured over 100,000 ids.
func TestRendezvousMovesAboutOneNth(t *testing.T) {
	const n = 100_000
	movedR, movedM := 0, 0
	counts := make([]int, 5)
	for i := 0; i < n; i++ {
		u := "user-" + strconv.Itoa(i)
		after := rendezvousShard(u, 5)
		counts[after]++
		if rendezvousShard(u, 4) != after {
			movedR++
			if after != 4 {
				t.Fatalf("%s moved between old shards", u)
			}
		}
		if md5Shard(u, 4) != md5Shard(u, 5) {
			movedM++
		}
	}
	if f := float64(movedR) / n; f < 0.18 || f > 0.22 {
		t.Fatalf("rendezvous moved %.3f of users, want ~0.20", f)
	}
	for s, c := range counts {
		if c < n/5*9/10 || c > n/5*11/10 {
			t.Fatalf("shard %d holds %d of %d: unbalanced", s, c, n)
		}
	}
	t.Logf("4→5 shards: rendezvous moved %.1f%%, md5 modulo moved %.1f%%", 100*float64(movedR)/n, 100*float64(movedM)/n)
}

func TestThroughTheBoundary(t *testing.T) {
	bin := plugintest.Build(t, ".")
	p, cleanup := plugintest.Subprocess(t, bin, sdk.KindSharding)
	defer cleanup()
	cfg := sdk.Config(`{"shards":"4","shard":2,"urls":["ws://s0","ws://s1","ws://s2","ws://s3"]}`)
	plugintest.CheckContract(t, p, plugintest.Options{Config: cfg})
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	sh := p.(sdk.Sharder)
	a, err := sh.Assign(context.Background(), "alice")
	if err != nil || a.Shard != 2 || !a.Local || a.URL != "ws://s2" {
		t.Fatalf("alice: %+v %v", a, err)
	}
	a, err = sh.Assign(context.Background(), "bob")
	if err != nil || a.Shard != 0 || a.Local || a.URL != "ws://s0" {
		t.Fatalf("bob: %+v %v", a, err)
	}
	for _, bad := range []string{`{"shards":0,"shard":0}`, `{"shards":2,"shard":2}`, `{"shards":2,"shard":0,"urls":["x"]}`, `{"shards":2,"shard":0,"algorithm":"crc"}`} {
		if err := p.Configure(context.Background(), sdk.Config(bad)); err == nil {
			t.Errorf("Configure(%s) accepted", bad)
		}
	}
}
