//go:build unix

package nodeplugin_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socketfleet/socketfleet/sdk"
	"github.com/socketfleet/socketfleet/sdk/plugintest"
)

const testKeys = `# test keys

k-alice alice lobby,team-red
  k-bob   bob
`

var npmOnce sync.Once

// wrapper returns the absolute path of auth-apikey-node, once node is on
// PATH and the npm dependencies are installed (npm ci when they are not).
func wrapper(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.NeedTool(t, "node", "install Node.js 20+ (apt-get install nodejs)")
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	plugintest.NeedFile(t, filepath.Join(dir, "node_modules", "@grpc", "grpc-js"), "the plugin's npm dependencies",
		"run `npm ci` in "+dir+" (make e2e-deps does)")
	return filepath.Join(dir, "auth-apikey-node")
}

func req(auth string) sdk.AuthRequest {
	return sdk.AuthRequest{Namespace: "/", Auth: json.RawMessage(auth), RemoteAddr: "127.0.0.1:40000"}
}

// TestThroughGoPlugin launches the Node.js plugin as the host does
// (go-plugin, gRPC, AutoMTLS) and runs the test kit and the apikey cases.
func TestThroughGoPlugin(t *testing.T) {
	path := wrapper(t)
	// keys_file relative to the config folder the host sends (config_dir).
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.txt"), []byte(testKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"keys_file":"keys.txt"}`)

	p, cleanup := plugintest.Subprocess(t, path, sdk.KindAuth)
	pid := pluginPID(t)
	if got := p.Info(); got != (sdk.Info{Kind: sdk.KindAuth, Name: "apikey", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}) {
		t.Errorf("Info = %+v", got)
	}
	plugintest.CheckContract(t, p, plugintest.Options{Config: sdk.Config(cfg), ConfigDir: dir})
	a := p.(sdk.Authenticator)
	plugintest.CheckAuth(t, a,
		plugintest.AuthCase{Name: "alice", Request: req(`{"key":"k-alice"}`), Allow: true, UserID: "alice", Rooms: []string{"lobby", "team-red"}, Redact: []string{"key"}},
		plugintest.AuthCase{Name: "bob", Request: req(`{"key":"k-bob"}`), Allow: true, UserID: "bob", Rooms: []string{}, Redact: []string{"key"}},
		plugintest.AuthCase{Name: "wrong key", Request: req(`{"key":"k-alicE"}`), Message: "invalid key"},
		plugintest.AuthCase{Name: "no key", Request: req(`{}`), Message: "authentication required: no key"},
		plugintest.AuthCase{Name: "no payload", Request: req(``), Message: "authentication required: no key"},
		plugintest.AuthCase{Name: "key not a string", Request: req(`{"key":42}`), Message: "authentication required: no key"},
	)

	// A bad block is refused with the plugin's message; the keys loaded
	// before stay in use.
	for cfg, want := range map[string]string{
		`{}`: `auth plugin: Configure: auth "apikey": keys_file is required`,
		`{"keys_file":"` + filepath.Join(t.TempDir(), "missing") + `"}`: "no such file or directory",
	} {
		if err := p.Configure(ctx(t), sdk.Config(cfg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Configure(%s) = %v, want an error containing %q", cfg, err, want)
		}
	}
	r := req(`{"key":"k-bob"}`)
	if d, err := a.Authenticate(ctx(t), &r); err != nil || !d.Allow {
		t.Errorf("after a refused Configure: %+v, %v", d, err)
	}

	// go-plugin's Kill calls GRPCController.Shutdown and waits up to 2 s for
	// the process to exit before it kills it.
	start := time.Now()
	cleanup()
	if d := time.Since(start); d >= 2*time.Second {
		t.Errorf("cleanup took %s: the plugin did not exit on Shutdown, go-plugin had to kill it", d)
	}
	if pid != 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("plugin process %d still there after cleanup (kill 0: %v)", pid, err)
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// pluginPID finds the node child of this test process running plugin.mjs
// (Linux only; 0 elsewhere).
func pluginPID(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		return 0
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, stat := range stats {
		b, err := os.ReadFile(stat)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(stat), "cmdline"))
		if strings.Contains(string(cmdline), "plugin.mjs") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(stat)))
			return pid
		}
	}
	t.Fatal("no child process running plugin.mjs")
	return 0
}

// TestRefusesToRunByHand: without the magic cookie the plugin explains
// itself and exits 1.
func TestRefusesToRunByHand(t *testing.T) {
	cmd := exec.Command(wrapper(t))
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, sdk.MagicCookieKey+"=") })
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "not meant to be run by hand") {
		t.Errorf("run by hand: %v\n%s", err, out)
	}
}

// TestExitsWhenOrphaned starts the plugin from a shell that exits once the
// plugin has printed its handshake: re-parented, the plugin must exit on
// its own.
func TestExitsWhenOrphaned(t *testing.T) {
	// The shell waits for its stdin to close (a background job's stdin is
	// /dev/null, so the plugin does not share it).
	cmd := exec.Command("sh", "-c", `"$0" & echo $!; read x`, wrapper(t))
	cmd.Env = append(os.Environ(), sdk.MagicCookieKey+"="+sdk.MagicCookieValue)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var got []string
	timeout := time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok { // the plugin, the last writer, closed stdout: it exited
				done = true
				break
			}
			got = append(got, l)
			if len(got) == 2 {
				stdin.Close() // the plugin is up: let its parent go
			}
		case <-timeout:
			if len(got) > 0 {
				if pid, err := strconv.Atoi(got[0]); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			t.Fatalf("the orphaned plugin is still running after 15 s; its output: %q", got)
		}
	}
	_ = cmd.Wait()
	if len(got) != 2 || !strings.HasPrefix(got[1], "1|1|tcp|127.0.0.1:") || !strings.HasSuffix(got[1], "|grpc") {
		t.Errorf("output %q, want the pid then a handshake line without a certificate", got)
	}
}

// TestRequiresTheHostCertificate: the plugin's TLS server lets in only the
// certificate the host sent in PLUGIN_CLIENT_CERT, and its own certificate,
// from the handshake line, verifies for "localhost".
func TestRequiresTheHostCertificate(t *testing.T) {
	host, other := selfSigned(t), selfSigned(t)
	cmd := exec.Command(wrapper(t))
	cmd.Env = append(os.Environ(), sdk.MagicCookieKey+"="+sdk.MagicCookieValue, "PLUGIN_CLIENT_CERT="+string(host.pem))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no handshake line: %v", err)
	}
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) != 6 || parts[0] != "1" || parts[1] != "1" || parts[2] != "tcp" || parts[4] != "grpc" {
		t.Fatalf("handshake line %q", line)
	}
	der, err := base64.RawStdEncoding.DecodeString(parts[5]) // unpadded, as go-plugin reads it
	if err != nil {
		t.Fatalf("server certificate field: %v", err)
	}
	serverCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCert)

	dial := func(certs []tls.Certificate) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", parts[3], &tls.Config{
			Certificates: certs, RootCAs: roots, ServerName: "localhost", NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12,
		})
		if err != nil {
			return err
		}
		defer conn.Close()
		// With TLS 1.3 the server judges the client's certificate after the
		// client's side of the handshake is done: its verdict is the first read.
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
			return err
		}
		_, err = conn.Read(make([]byte, 1))
		if p := conn.ConnectionState().NegotiatedProtocol; err == nil && p != "h2" {
			return fmt.Errorf("negotiated protocol %q, want h2", p)
		}
		return err
	}
	if err := dial([]tls.Certificate{host.tls}); err != nil {
		t.Errorf("with the host's certificate: %v", err)
	}
	if err := dial(nil); err == nil {
		t.Error("a client without a certificate was let in")
	} else {
		t.Logf("without a certificate: %v", err)
	}
	if err := dial([]tls.Certificate{other.tls}); err == nil {
		t.Error("a client with another certificate was let in")
	} else {
		t.Logf("with another certificate: %v", err)
	}
}

type keyPair struct {
	pem []byte
	tls tls.Certificate
}

// selfSigned makes a client certificate the way a go-plugin host does.
func selfSigned(t *testing.T) keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
}
