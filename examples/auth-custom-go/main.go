// Command auth-apikey is an example third-party plugin: auth "apikey" lets
// in a socket whose CONNECT payload is {"key": "..."} with a key listed in
// keys_file. Build it into bin/plugins/auth-apikey; see README.md.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/socketfleet/socketfleet/sdk"
)

func main() { sdk.Serve(newPlugin()) }

// user is what a key stands for.
type user struct {
	id    string
	rooms []string
}

// apikey holds the keys by their SHA-256, so a lookup takes the same time
// however much of a key an attacker guessed.
type apikey struct {
	keys atomic.Pointer[map[[32]byte]user]
}

func newPlugin() *apikey { return &apikey{} }

func (*apikey) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindAuth, Name: "apikey", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (*apikey) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{{Name: "keys_file", Type: sdk.TypeString, Required: true,
		Description: "File of lines `<key> <user-id> [room,room...]`; blank lines and # comments are ignored. Read at start-up."}}}
}

func (p *apikey) Configure(ctx context.Context, cfg sdk.Config) error {
	var c struct {
		KeysFile string `json:"keys_file"`
	}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.KeysFile == "" {
		return errors.New(`auth "apikey": keys_file is required`)
	}
	// Relative to the config file's folder, as the operator reads it.
	keys, err := readKeys(sdk.ResolvePath(ctx, c.KeysFile))
	if err != nil {
		return sdk.AttrError("keys_file", err.Error())
	}
	p.keys.Store(&keys)
	return nil
}

func (p *apikey) Authenticate(_ context.Context, req *sdk.AuthRequest) (*sdk.AuthDecision, error) {
	keys := p.keys.Load()
	if keys == nil {
		return nil, errors.New("not configured")
	}
	var payload struct {
		Key string `json:"key"`
	}
	_ = json.Unmarshal(req.Auth, &payload) // anything but {"key": "<string>"} is no key
	if payload.Key == "" {
		return &sdk.AuthDecision{Message: "authentication required: no key"}, nil
	}
	u, ok := (*keys)[sha256.Sum256([]byte(payload.Key))]
	if !ok {
		return &sdk.AuthDecision{Message: "invalid key"}, nil
	}
	// The key is a credential: the socket does not keep it (rules and the
	// backend API see the payload without it).
	return &sdk.AuthDecision{Allow: true, UserID: u.id, Rooms: u.rooms, RedactAuth: []string{"key"}}, nil
}

// readKeys parses a keys file: `<key> <user-id> [room,room...]` per line.
func readKeys(path string) (map[[32]byte]user, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	keys := map[[32]byte]user{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) > 3 || len(fields) < 2 {
			return nil, fmt.Errorf("%s:%d: want `<key> <user-id> [room,room...]`", path, n)
		}
		h := sha256.Sum256([]byte(fields[0]))
		if _, dup := keys[h]; dup {
			return nil, fmt.Errorf("%s:%d: key listed twice", path, n)
		}
		u := user{id: fields[1]}
		if len(fields) == 3 {
			u.rooms = strings.FieldsFunc(fields[2], func(r rune) bool { return r == ',' })
		}
		keys[h] = u
	}
	return keys, sc.Err()
}
