package main

import (
	"fmt"
	"testing"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

// The built binary, launched as the core launches it, against the fake.
func TestSubprocess(t *testing.T) {
	es := newFakeES(t)
	bin := plugintest.Build(t, ".")
	p, cleanup := plugintest.Subprocess(t, bin, sdk.KindLogSink)
	defer cleanup()
	plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(fmt.Sprintf(`{"url":%q,"flush_interval":"50ms"}`, es.url))})
	if n := es.storedCount("plugintest: first") + es.storedCount("plugintest: second"); n != 2 {
		t.Fatalf("%d of the contract's 2 entries stored", n)
	}
}
