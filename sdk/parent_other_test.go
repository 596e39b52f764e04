//go:build !linux

package sdk_test

import "runtime"

const hostHelperEnv = "SDK_TEST_HOST_HELPER"

func runHostHelper(string) { panic("host helper is linux-only") }

func runtimeGoexit() { runtime.Goexit() }
