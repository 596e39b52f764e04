// Package testkit holds the helpers that socketfleet's Go tests share, so
// that each test file keeps only what it tests.
//
//   - Processes: Command is exec.Command with extra environment; Start
//     runs a command with its stdout and stderr in a
//     Buffer (safe to read while it runs), in its own process group; Stop
//     sends SIGTERM, then SIGKILL to the group after a grace period. Every
//     process is stopped by t.Cleanup, and its output logged if the test
//     failed, so nothing outlives a test.
//   - Ports: FreePort, FreeAddr, FreePorts (a run of consecutive ports).
//   - Waiting: WaitFor, WaitForState, Poll, WaitHTTP; each has a
//     deadline, and a failure names what was awaited.
//   - Binaries: Build compiles a package of this module once per test
//     process (see plugintest.BuildIn for where); Install puts such a
//     binary at a given path (a plugin_dir entry); ServerAndPlugins gives
//     the server and a plugin_dir; UseServer sets $SOCKETFLEET_SERVER for
//     sdk/plugintest's server helpers. The rule is one: tests always build from
//     the working tree and never use bin/ (a stale `make build` would test
//     old code).
//   - Socket.IO: DialSocketIO and ConnectSocketIO open a WebSocket session
//     and connect it to "/", checking the open packet and the reply;
//     ReadWS reads one message within 3 s.
//   - ModuleRoot finds this module's root from the test's folder.
//   - Redis: StartRedis runs a throwaway redis-server on a free port.
//   - TLS: NewCA makes a throwaway CA; Issue gives a leaf certificate for
//     127.0.0.1 and localhost with a chosen serial; WriteKeyPair puts a
//     pair in place as deployment tools do (written, then renamed).
//
// The rule for external tools and packages is one: Need(t, names...) for
// programs (redis-server, nginx, prometheus, promtool, chromium, node, npm,
// ...) and NeedNPM for the npm packages of test/e2e/node_modules. When one
// is missing the test is skipped with how to install it on a developer's
// machine, and fails when CI=true (plugintest.Unavailable), so that CI does
// not pass by skipping.
//
// Plugin authors get the public pieces (the tool rule, building a plugin
// once) from sdk/plugintest; testkit wraps them for this module.
package testkit
