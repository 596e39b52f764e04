package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// What the scenarios read from /proc about the server processes, and from
// getrusage about the generator itself.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat returns a process's parent pid and its CPU time (user + system).
func procStat(pid int) (ppid int, cpu time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid ... utime stime ...": comm may hold spaces and
	// parentheses, so fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, _ = strconv.Atoi(string(f[1]))
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return ppid, time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procRSS returns a process's resident set size in bytes (VmRSS).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v) // "123456 kB"
			if len(f) == 2 {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				if err == nil {
					return kb * 1024, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// treeRSS is the RSS of pids and their descendants together.
func treeRSS(pids []int) (int64, error) {
	var total int64
	for i, p := range withDescendants(pids) {
		rss, err := procRSS(p)
		if err != nil && i < len(pids) {
			return 0, err
		}
		total += rss
	}
	return total, nil
}

// withDescendants returns pids and every live descendant of them (a
// socketfleet server's plugins are child processes doing part of its work,
// e.g. the Redis adapter).
func withDescendants(pids []int) []int {
	parent := map[int]int{}
	ents, _ := filepath.Glob("/proc/[0-9]*")
	for _, e := range ents {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		if pp, _, err := procStat(pid); err == nil {
			parent[pid] = pp
		}
	}
	in := map[int]bool{}
	out := []int{}
	for _, p := range pids {
		if !in[p] {
			in[p] = true
			out = append(out, p)
		}
	}
	for changed := true; changed; {
		changed = false
		for pid, pp := range parent {
			if in[pp] && !in[pid] {
				in[pid] = true
				out = append(out, pid)
				changed = true
			}
		}
	}
	return out
}

// cpuMeter measures the CPU time a set of processes use between start and
// stop.
type cpuMeter struct {
	pids  []int
	start map[int]time.Duration
}

func startCPU(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[int]time.Duration{}}
	for _, p := range pids {
		if _, cpu, err := procStat(p); err == nil {
			m.start[p] = cpu
		}
	}
	return m
}

// used returns the CPU time used since start, summed over the processes
// that were there at start and still are.
func (m *cpuMeter) used() time.Duration {
	var total time.Duration
	for p, c0 := range m.start {
		if _, c1, err := procStat(p); err == nil && c1 > c0 {
			total += c1 - c0
		}
	}
	return total
}

// runqWait is the time the processes' threads have waited on a run queue
// for a CPU so far (the second field of /proc/<pid>/task/<tid>/schedstat,
// ns; 0 where the kernel has no schedstats). A server that waited much
// was starved by other processes on its core, and its latency says so.
// Threads that ended in between are not counted.
func runqWait(pids []int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", p))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			if f := bytes.Fields(b); len(f) >= 2 {
				if ns, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil {
					total += time.Duration(ns)
				}
			}
		}
	}
	return total
}

// selfCPU is the generator's own CPU time (user + system) so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// openResults makes the results folder of a long run (out, or
// bench/results/<kind>-<UTC time> when empty) and creates its <kind>.log
// there; it returns the folder and the open log.
func openResults(out, kind string) (string, *os.File, error) {
	if out == "" {
		out = filepath.Join("bench", "results", kind+"-"+time.Now().UTC().Format("2006-01-02T15-04"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", nil, err
	}
	logf, err := os.Create(filepath.Join(out, kind+".log"))
	if err != nil {
		return "", nil, err
	}
	return out, logf, nil
}
