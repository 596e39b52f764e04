package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// jwksCheckInterval bounds how often jwks_file is looked at.
const jwksCheckInterval = time.Second

// maxJWKSSize bounds what is read from jwks_file.
const maxJWKSSize = 4 << 20

// keySet is one loaded JWKS.
type keySet struct {
	byKid map[string]*verifyKey
	only  *verifyKey // the key when the set holds exactly one: tokens without kid use it
	count int
}

// lookup returns the key a token with this kid header is verified with.
func (ks *keySet) lookup(kid string) *verifyKey {
	if kid == "" {
		return ks.only
	}
	return ks.byKid[kid]
}

// jwksSource is a JWKS file reloaded when it changes. Authenticate calls
// current(); at most once per jwksCheckInterval one caller stats the file
// and, when its mtime or size changed, reads and parses it. A file that
// does not parse is logged and the previous keys stay in use.
type jwksSource struct {
	path string
	logw io.Writer
	base time.Time // monotonic origin of nextCheck

	keys      atomic.Pointer[keySet]
	nextCheck atomic.Int64 // nanoseconds since base

	mu      sync.Mutex // held by the one caller checking the file
	modTime time.Time  // of the last content read, valid or not
	size    int64
	lastErr string // last logged error, to log each problem once
}

func newJWKSSource(path string, logw io.Writer) (*jwksSource, error) {
	if path == "" {
		return nil, errors.New("path is empty")
	}
	s := &jwksSource{path: path, logw: logw, base: time.Now()}
	ks, err := s.load()
	if err != nil {
		return nil, err
	}
	s.keys.Store(ks)
	s.nextCheck.Store(int64(time.Since(s.base) + jwksCheckInterval))
	return s, nil
}

// current returns the keys in use, first reloading the file if it is time
// to look and it changed.
func (s *jwksSource) current() *keySet {
	now := int64(time.Since(s.base))
	if now >= s.nextCheck.Load() && s.mu.TryLock() {
		if now >= s.nextCheck.Load() {
			s.nextCheck.Store(now + int64(jwksCheckInterval))
			s.refresh()
		}
		s.mu.Unlock()
	}
	return s.keys.Load()
}

// refresh reloads the file if it changed; s.mu is held.
func (s *jwksSource) refresh() {
	fi, err := os.Stat(s.path)
	if err != nil {
		s.logErr(err)
		return
	}
	if fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return
	}
	ks, err := s.load()
	if err != nil {
		s.logErr(err)
		return
	}
	s.keys.Store(ks)
	s.lastErr = ""
	s.logf("jwks_file %s reloaded: %d keys", s.path, ks.count)
}

func (s *jwksSource) logErr(err error) {
	msg := err.Error()
	if msg == s.lastErr {
		return
	}
	s.lastErr = msg
	s.logf("jwks_file %s: %s; keeping the previous keys", s.path, msg)
}

func (s *jwksSource) logf(format string, args ...any) {
	if s.logw != nil {
		fmt.Fprintf(s.logw, "auth-jwt: "+format+"\n", args...)
	}
}

// load reads and parses the file, recording the mtime and size of what it
// read (so an invalid file is not re-parsed until it changes again).
func (s *jwksSource) load() (*keySet, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	s.modTime, s.size = fi.ModTime(), fi.Size()
	if len(data) > maxJWKSSize {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKSSize)
	}
	ks, warnings, err := parseJWKS(data)
	for _, w := range warnings {
		s.logf("jwks_file %s: %s", s.path, w)
	}
	return ks, err
}

// parseJWKS parses a JWKS document. Keys for other uses or of unsupported
// types are skipped with a warning; a malformed key makes the whole file
// invalid, as does a file without any usable key.
func parseJWKS(data []byte) (*keySet, []string, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New("no \"keys\" array")
	}
	ks := &keySet{byKid: map[string]*verifyKey{}}
	var warnings []string
	var noKid []*verifyKey
	for i, raw := range *doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, warnings, fmt.Errorf("key %d: invalid JSON: %w", i, err)
		}
		name := fmt.Sprintf("key %d", i)
		if j.Kid != "" {
			name = fmt.Sprintf("key %d (kid %q)", i, j.Kid)
		}
		k, skip, err := parseJWK(&j)
		if skip {
			warnings = append(warnings, fmt.Sprintf("%s skipped: %s", name, err))
			continue
		}
		if err != nil {
			return nil, warnings, fmt.Errorf("%s: %w", name, err)
		}
		if j.Kid == "" {
			noKid = append(noKid, k)
		} else {
			if _, dup := ks.byKid[j.Kid]; dup {
				return nil, warnings, fmt.Errorf("%s: kid %q appears twice", name, j.Kid)
			}
			ks.byKid[j.Kid] = k
		}
		ks.count++
		if ks.count == 1 {
			ks.only = k
		}
	}
	switch {
	case ks.count == 0:
		return nil, warnings, errors.New("no usable signing key")
	case ks.count > 1:
		ks.only = nil
		if len(noKid) > 0 {
			warnings = append(warnings, fmt.Sprintf("%d keys without kid are unused: with several keys, tokens select one by kid", len(noKid)))
		}
	}
	return ks, warnings, nil
}
