package config

import (
	"strings"
	"testing"
	"time"
)

// TestLimits: the limits block's defaults (config.hcl shows them), each
// attribute set, and the refusals.
func TestLimits(t *testing.T) {
	if got := mustLoad(t, "../../config.hcl").Server.Limits; got != DefaultLimits {
		t.Errorf("config.hcl's limits %+v, want the defaults %+v", got, DefaultLimits)
	}
	if got := mustParse(t, `server {}`).Server.Limits; got != DefaultLimits {
		t.Errorf("no limits block: %+v", got)
	}
	got := mustParse(t, `server {
  limits {
    packet_rate         = 0
    packet_burst        = 5
    max_rooms           = 3
    attachment_timeout  = "1s"
    body_timeout        = "2s"
    max_head_bytes      = "8KiB"
    max_handshake_bytes = 1024
    idle_timeout        = "5s"
  }
}`).Server.Limits
	want := Limits{PacketRate: 0, PacketBurst: 5, MaxRooms: 3, AttachmentTimeout: time.Second, BodyTimeout: 2 * time.Second,
		MaxHeadBytes: 8192, MaxHandshakeBytes: 1024, IdleTimeout: 5 * time.Second}
	if got != want {
		t.Errorf("limits %+v, want %+v", got, want)
	}
	for src, msg := range map[string]string{
		"server {\n limits { max_rooms = 0 }\n}":         `"max_rooms" must be at least 1`,
		"server {\n limits { max_head_bytes = 1000 }\n}": `max_head_bytes must be at least 4KiB`,
		"server {\n limits { idle_timeout = \"0s\" }\n}": `"idle_timeout" must be greater than zero`,
		"server {\n limits { packet_rate = -1 }\n}":      `"packet_rate" must be at least 0`,
		"server {\n limits { packets = 1 }\n}":           `Unsupported argument`,
		"server {\n limits {}\n limits {}\n}":            `limits`,
	} {
		_, diags := Parse([]byte(src), "test.hcl")
		if !diags.HasErrors() || !strings.Contains(diags.Error(), msg) {
			t.Errorf("%s: %v, want an error saying %s", src, diags, msg)
		}
	}
}
