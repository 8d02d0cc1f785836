package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RSS is the server's resident set size over the run (Linux; read from
// /proc/PID/status).
type RSS struct {
	PID      int     `json:"pid"`
	StartMiB float64 `json:"start_mib"`
	EndMiB   float64 `json:"end_mib"`
	MinMiB   float64 `json:"min_mib"`
	MaxMiB   float64 `json:"max_mib"`
	// DriftPct compares the mean of the last tenth of the run with the mean
	// of the second tenth (the first is warm-up): the "flat" of a soak.
	DriftPct *float64    `json:"drift_pct,omitempty"`
	Samples  []RSSSample `json:"samples"`
	// CPUSeconds is the CPU time (user + system) the server process used
	// during the run, and CPUMSPerRequest that divided by the requests
	// answered: what a request costs the server (with the embedded store,
	// which runs in the same process), whatever else runs on the machine.
	CPUSeconds      float64 `json:"cpu_s"`
	CPUMSPerRequest float64 `json:"cpu_ms_per_request,omitempty"`
}

// RSSSample is one reading.
type RSSSample struct {
	T   float64 `json:"t_s"`
	MiB float64 `json:"mib"`
}

// at is the reading nearest to t seconds.
func (r *RSS) at(t float64) float64 {
	best, bestD := 0.0, -1.0
	for _, s := range r.Samples {
		d := s.T - t
		if d < 0 {
			d = -d
		}
		if bestD < 0 || d < bestD {
			best, bestD = s.MiB, d
		}
	}
	return best
}

type rssSampler struct {
	pid     int
	start   time.Time
	cpu0    float64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []RSSSample
}

// startRSS samples pid's RSS twice a second; pid 0 samples nothing.
func startRSS(ctx context.Context, pid int) *rssSampler {
	s := &rssSampler{pid: pid, start: time.Now()}
	if pid <= 0 {
		return s
	}
	s.cpu0, _ = readCPU(pid)
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			if mib, err := readRSS(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, RSSSample{T: round(time.Since(s.start).Seconds(), 2), MiB: round(mib, 1)})
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) last() float64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return 0
	}
	return s.samples[len(s.samples)-1].MiB
}

func (s *rssSampler) stop() *RSS {
	if s.pid <= 0 {
		return nil
	}
	if mib, err := readRSS(s.pid); err == nil {
		s.mu.Lock()
		s.samples = append(s.samples, RSSSample{T: round(time.Since(s.start).Seconds(), 2), MiB: round(mib, 1)})
		s.mu.Unlock()
	}
	cpu1, _ := readCPU(s.pid)
	s.cancel()
	s.wg.Wait()
	if len(s.samples) == 0 {
		return nil
	}
	r := &RSS{PID: s.pid, Samples: s.samples, StartMiB: s.samples[0].MiB, EndMiB: s.samples[len(s.samples)-1].MiB}
	r.CPUSeconds = round(cpu1-s.cpu0, 2)
	r.MinMiB, r.MaxMiB = r.StartMiB, r.StartMiB
	for _, x := range s.samples {
		r.MinMiB, r.MaxMiB = min(r.MinMiB, x.MiB), max(r.MaxMiB, x.MiB)
	}
	if n := len(s.samples); n >= 20 {
		mean := func(xs []RSSSample) float64 {
			var sum float64
			for _, x := range xs {
				sum += x.MiB
			}
			return sum / float64(len(xs))
		}
		tenth := n / 10
		early, late := mean(s.samples[tenth:2*tenth]), mean(s.samples[n-tenth:])
		d := round((late-early)/early*100, 1)
		r.DriftPct = &d
	}
	return r
}

// readRSS reads VmRSS of pid in MiB.
func readRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// readCPU reads the user + system CPU seconds of pid (/proc/PID/stat).
func readCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux Priora runs on.
const clockTicks = 100

// findListener finds the local process listening on base's port (Linux,
// processes of the same user); 0 when it cannot.
func findListener(base string) int {
	u, err := url.Parse(base)
	if err != nil || !isLoopback(u.Hostname()) {
		return 0
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		if u.Scheme == "https" {
			port = 443
		} else {
			port = 80
		}
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 32); ok && err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(p + "/fd")
		for _, fd := range fds {
			if l, err := os.Readlink(p + "/fd/" + fd.Name()); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// ProcessCPU is the CPU time this process has used: user and system, all
// threads, the garbage collector's included. Benchmarks report it per call
// (cpu-ns/op) beside the wall time: on a shared machine the wall time
// includes waiting for a core, the CPU time does not.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
