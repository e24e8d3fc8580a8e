package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"clusterchat"
)

// serverMem returns the server's resident memory in KiB, from
// /proc/PID/status when cfg.PID is set, else from the /metrics gauge
// process_resident_memory_bytes; ok is false when neither is configured.
func serverMem(ctx context.Context, cfg *Config) (kib int64, ok bool, err error) {
	switch {
	case cfg.PID > 0:
		kib, err = procRSS(cfg.PID)
		return kib, err == nil, err
	case cfg.Metrics != "":
		v, err := metric(ctx, cfg.Metrics, "process_resident_memory_bytes")
		return int64(v / 1024), err == nil, err
	}
	return 0, false, nil
}

// procRSS reads VmRSS (KiB) from /proc/PID/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, clusterchat.Errorf(clusterchat.ENOTFOUND, "no VmRSS in /proc/%d/status", pid)
}

// metric fetches a Prometheus text exposition and returns the value of the
// unlabelled sample name.
func metric(ctx context.Context, url, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return parseMetric(resp.Body, name)
}

func parseMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 0 {
			return strconv.ParseFloat(f[0], 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, clusterchat.Errorf(clusterchat.ENOTFOUND, "metric %s not exposed", name)
}
